using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using PipeTransport.Perf.Harness;

namespace PipeTransport.Perf.Kestrel;

/// <summary>Runs <c>wrk --latency</c> once and parses requests/s and the p50/p99 latencies.</summary>
internal static partial class Wrk
{
    // TechEmpower's pipelining script: each connection sends `depth` requests in one write and
    // waits for all the responses (wrk's latency is then that of the batch).
    private const string PipelineScript = """
        init = function(args)
          local depth = tonumber(args[1]) or 1
          local r = {}
          for i = 1, depth do r[i] = wrk.format() end
          req = table.concat(r)
        end
        request = function() return req end
        """;

    private static readonly Lazy<string> s_pipelineScript = new(() =>
    {
        string path = Path.Combine(Path.GetTempPath(), $"pipetransport-perf-pipeline-{Environment.ProcessId}.lua");
        File.WriteAllText(path, PipelineScript);
        AppDomain.CurrentDomain.ProcessExit += (_, _) => File.Delete(path);
        return path;
    });

    /// <param name="pipelineDepth">Requests each connection sends in one write; 1: no script, one at a time.</param>
    public static async Task<Sample> RunAsync(int port, string path, int connections, int seconds, int pipelineDepth, CancellationToken cancellationToken)
    {
        var start = new ProcessStartInfo("wrk")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string argument in new[] { "-t1", $"-c{connections}", $"-d{seconds}s", "--latency", $"http://127.0.0.1:{port}{path}" })
        {
            start.ArgumentList.Add(argument);
        }

        if (pipelineDepth > 1)
        {
            foreach (string argument in new[] { "-s", s_pipelineScript.Value, "--", pipelineDepth.ToString(CultureInfo.InvariantCulture) })
            {
                start.ArgumentList.Add(argument);
            }
        }

        Process wrk;
        try
        {
            wrk = Process.Start(start) ?? throw new InvalidOperationException("wrk did not start");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException("wrk is not installed (apt-get install wrk)", e);
        }

        using (wrk)
        {
            var stdout = wrk.StandardOutput.ReadToEndAsync(cancellationToken);
            var stderr = wrk.StandardError.ReadToEndAsync(cancellationToken);
            try
            {
                await wrk.WaitForExitAsync(cancellationToken);
            }
            catch (OperationCanceledException)
            {
                wrk.Kill();
                throw;
            }

            string output = await stdout;
            var rps = RequestsPerSecond().Match(output);
            if (wrk.ExitCode != 0 || !rps.Success || output.Contains("Non-2xx", StringComparison.Ordinal))
            {
                throw new InvalidOperationException($"wrk -c{connections} {path} on port {port} failed (exit {wrk.ExitCode}): {output}{await stderr}");
            }

            if (SocketErrors().Match(output) is { Success: true } errors)
            {
                Console.Error.WriteLine($"wrk -c{connections} {path}: {errors.Value.Trim()}");
            }

            // Pipelined, wrk's latencies are not per request (a p99 of zero below a p50 of a
            // millisecond): left out; h2load's per-request log has them.
            return new Sample(
                double.Parse(rps.Groups[1].Value, CultureInfo.InvariantCulture),
                P50Micros: pipelineDepth > 1 ? null : Percentile(output, "50%"),
                P99Micros: pipelineDepth > 1 ? null : Percentile(output, "99%"));
        }
    }

    private static double? Percentile(string output, string which)
    {
        var match = Regex.Match(output, @"^\s*" + Regex.Escape(which) + @"\s+([0-9.]+)(us|ms|s)\s*$", RegexOptions.Multiline);
        if (!match.Success)
        {
            return null;
        }

        double value = double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
        return match.Groups[2].Value switch
        {
            "us" => value,
            "ms" => value * 1_000,
            _ => value * 1_000_000,
        };
    }

    [GeneratedRegex(@"Requests/sec:\s+([0-9.]+)")]
    private static partial Regex RequestsPerSecond();

    [GeneratedRegex(@"Socket errors:[^\n]*")]
    private static partial Regex SocketErrors();
}
