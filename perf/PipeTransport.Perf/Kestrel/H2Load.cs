using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using PipeTransport.Perf.Harness;

namespace PipeTransport.Perf.Kestrel;

/// <summary>
/// Runs <c>h2load</c> (Debian's <c>nghttp2-client</c>) once: HTTP/2 with several streams per connection,
/// or HTTP/1.1 pipelining (<c>--h1</c>), over TCP or a Unix socket. Requests/s from its summary;
/// p50/p99 from its per-request log.
/// </summary>
internal static partial class H2Load
{
    /// <param name="port">The server's port (the URI's authority, and the address when <paramref name="unixPath"/> is null).</param>
    /// <param name="unixPath">Connect to this Unix socket instead of the port.</param>
    /// <param name="http1">HTTP/1.1 with <paramref name="streams"/> pipelined requests in flight, instead of HTTP/2 prior knowledge.</param>
    /// <param name="path">The request path.</param>
    /// <param name="connections">Client connections.</param>
    /// <param name="streams">Requests in flight per connection.</param>
    /// <param name="bodySize">A POST body of this many bytes per request, or 0 for GET.</param>
    /// <param name="seconds">Duration.</param>
    /// <param name="cancellationToken">Kills h2load.</param>
    public static async Task<Sample> RunAsync(int port, string? unixPath, bool http1, string path, int connections, int streams, int bodySize, int seconds, CancellationToken cancellationToken)
    {
        string log = Path.GetTempFileName();
        string? body = null;
        try
        {
            var start = new ProcessStartInfo("h2load")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            var arguments = new List<string> { "-t1", $"-c{connections}", $"-m{streams}", $"-D{seconds}", $"--log-file={log}" };
            if (http1)
            {
                arguments.Add("--h1");
            }

            if (unixPath is not null)
            {
                arguments.Add($"--base-uri=unix:{unixPath}");
            }

            if (bodySize > 0)
            {
                body = Path.GetTempFileName();
                await File.WriteAllBytesAsync(body, Enumerable.Range(0, bodySize).Select(i => (byte)i).ToArray(), cancellationToken);
                arguments.Add($"--data={body}");
            }

            arguments.Add(string.Create(CultureInfo.InvariantCulture, $"http://127.0.0.1:{port}{path}"));
            arguments.ForEach(start.ArgumentList.Add);

            Process h2load;
            try
            {
                h2load = Process.Start(start) ?? throw new InvalidOperationException("h2load did not start");
            }
            catch (System.ComponentModel.Win32Exception e)
            {
                throw new InvalidOperationException("h2load is not installed (apt-get install nghttp2-client)", e);
            }

            using (h2load)
            {
                var stdout = h2load.StandardOutput.ReadToEndAsync(cancellationToken);
                var stderr = h2load.StandardError.ReadToEndAsync(cancellationToken);
                try
                {
                    await h2load.WaitForExitAsync(cancellationToken);
                }
                catch (OperationCanceledException)
                {
                    h2load.Kill();
                    throw;
                }

                string output = await stdout;
                var rps = RequestsPerSecond().Match(output);
                var requests = Requests().Match(output);
                var status = StatusCodes().Match(output);
                if (h2load.ExitCode != 0 || !rps.Success || !requests.Success || !status.Success
                    || requests.Groups["failed"].Value != "0" || requests.Groups["errored"].Value != "0"
                    || status.Groups["client"].Value != "0" || status.Groups["server"].Value != "0")
                {
                    throw new InvalidOperationException($"h2load {string.Join(' ', arguments)} failed (exit {h2load.ExitCode}): {output}{await stderr}");
                }

                (double p50, double p99) = Percentiles(log);
                return new Sample(double.Parse(rps.Groups[1].Value, CultureInfo.InvariantCulture), p50, p99);
            }
        }
        finally
        {
            File.Delete(log);
            if (body is not null)
            {
                File.Delete(body);
            }
        }
    }

    // The log's third column is the microseconds from a request's start to the end of its response.
    private static (double P50, double P99) Percentiles(string log)
    {
        var durations = new List<long>();
        foreach (string line in File.ReadLines(log))
        {
            int last = line.LastIndexOf('\t');
            if (last > 0 && long.TryParse(line.AsSpan(last + 1), NumberStyles.None, CultureInfo.InvariantCulture, out long micros))
            {
                durations.Add(micros);
            }
        }

        if (durations.Count == 0)
        {
            return (double.NaN, double.NaN);
        }

        durations.Sort();
        return (durations[(int)(durations.Count * 0.50)], durations[Math.Min(durations.Count - 1, (int)(durations.Count * 0.99))]);
    }

    [GeneratedRegex(@"finished in [0-9.]+m?s, ([0-9.]+) req/s")]
    private static partial Regex RequestsPerSecond();

    [GeneratedRegex(@"requests: \d+ total, \d+ started, \d+ done, (?<succeeded>\d+) succeeded, (?<failed>\d+) failed, (?<errored>\d+) errored")]
    private static partial Regex Requests();

    [GeneratedRegex(@"status codes: \d+ 2xx, \d+ 3xx, (?<client>\d+) 4xx, (?<server>\d+) 5xx")]
    private static partial Regex StatusCodes();
}
