using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;

namespace PipeTransport.Kestrel.Perf;

/// <summary>
/// Runs the same app on each transport in its own process and drives it with wrk: every scenario
/// (path x connection count) is measured once per transport per round, the transport order alternating
/// between rounds, and the median of the rounds is reported. Then idle memory: N keep-alive connections
/// that each made one request, measured as RSS and managed-heap growth per connection.
/// </summary>
internal static partial class Bench
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    public static async Task<int> RunAsync(string[] args)
    {
        var duration = int.Parse(PerfServer.Arg(args, "--duration") ?? "10", Inv);
        var runs = int.Parse(PerfServer.Arg(args, "--runs") ?? "3", Inv);
        var connections = (PerfServer.Arg(args, "--connections") ?? "32,256").Split(',').Select(c => int.Parse(c, Inv)).ToArray();
        var wrkThreads = int.Parse(PerfServer.Arg(args, "--wrk-threads") ?? "1", Inv);
        var transports = (PerfServer.Arg(args, "--transports") ?? "sockets,pipe,pipe-inline").Split(',');
        var idle = int.Parse(PerfServer.Arg(args, "--idle") ?? "5000", Inv);
        var markdown = PerfServer.Arg(args, "--markdown");
        string[] paths = ["/plaintext", "/64k"];

        var results = new Dictionary<(string Path, int Connections, string Transport), List<double>>();
        var servers = new Dictionary<string, ServerProcess>();
        try
        {
            var port = 5100;
            foreach (var transport in transports)
            {
                servers[transport] = await ServerProcess.StartAsync(transport, port++);
            }

            Console.WriteLine($"# warm-up ({transports.Length} transports)");
            foreach (var server in servers.Values)
            {
                foreach (var path in paths)
                {
                    await Wrk(server, path, 32, wrkThreads, 2);
                }
            }

            for (var round = 0; round < runs; round++)
            {
                var order = round % 2 == 0 ? transports : transports.Reverse().ToArray();
                foreach (var path in paths)
                {
                    foreach (var c in connections)
                    {
                        foreach (var transport in order)
                        {
                            var rps = await Wrk(servers[transport], path, c, wrkThreads, duration);
                            Console.WriteLine($"round {round + 1} {path,-10} c={c,-4} {transport,-12} {rps,12:F0} req/s");
                            (results.TryGetValue((path, c, transport), out var list) ? list : results[(path, c, transport)] = []).Add(rps);
                        }
                    }
                }
            }
        }
        finally
        {
            foreach (var server in servers.Values)
            {
                await server.DisposeAsync();
            }
        }

        var memory = new Dictionary<string, (double Rss, double Heap)>();
        foreach (var transport in transports)
        {
            memory[transport] = await MeasureIdleAsync(transport, 5200, idle);
            Console.WriteLine($"idle {transport,-12} {memory[transport].Rss,8:F0} B RSS/conn {memory[transport].Heap,8:F0} B heap/conn");
        }

        var report = Report(results, memory, transports, paths, connections, duration, runs, wrkThreads, idle);
        Console.WriteLine();
        Console.WriteLine(report);
        if (markdown is not null)
        {
            await File.WriteAllTextAsync(markdown, report);
        }
        return 0;
    }

    private static async Task<double> Wrk(ServerProcess server, string path, int connections, int threads, int seconds)
    {
        var start = new ProcessStartInfo("wrk")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var a in new[] { $"-t{threads}", $"-c{connections}", $"-d{seconds}s", $"http://127.0.0.1:{server.Port}{path}" })
        {
            start.ArgumentList.Add(a);
        }
        using var wrk = Process.Start(start) ?? throw new InvalidOperationException("wrk did not start (apt-get install wrk)");
        var output = await wrk.StandardOutput.ReadToEndAsync();
        await wrk.WaitForExitAsync();
        var match = RequestsPerSecond().Match(output);
        if (!match.Success || output.Contains("Non-2xx", StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"wrk against {server.Transport}{path}: {output}{await wrk.StandardError.ReadToEndAsync()}");
        }
        return double.Parse(match.Groups[1].Value, Inv);
    }

    [GeneratedRegex(@"Requests/sec:\s+([0-9.]+)")]
    private static partial Regex RequestsPerSecond();

    /// <summary>
    /// A fresh server; N keep-alive connections that each made one request and stay open, then N more.
    /// Only the second N are counted: the first absorb one-time growth (memory pools filling up to the
    /// concurrency of the connect bursts, thread-pool threads, JIT), so the figure is the steady cost of
    /// one more idle connection.
    /// </summary>
    private static async Task<(double Rss, double Heap)> MeasureIdleAsync(string transport, int port, int count)
    {
        await using var server = await ServerProcess.StartAsync(transport, port);
        var endPoint = new IPEndPoint(IPAddress.Loopback, port);
        var sockets = new List<Socket>(2 * count);
        try
        {
            await OpenManyAsync(endPoint, count, sockets);
            var (rss0, heap0) = await StatsAsync(endPoint);
            await OpenManyAsync(endPoint, count, sockets);
            var (rss1, heap1) = await StatsAsync(endPoint);
            return ((rss1 - rss0) / (double)count, (heap1 - heap0) / (double)count);
        }
        finally
        {
            foreach (var socket in sockets)
            {
                socket.Dispose();
            }
        }
    }

    private static async Task OpenManyAsync(EndPoint endPoint, int count, List<Socket> sockets)
    {
        for (var i = 0; i < count; i += 100)
        {
            sockets.AddRange(await Task.WhenAll(Enumerable.Range(0, Math.Min(100, count - i)).Select(_ => OpenAsync(endPoint))));
        }
    }

    private static async Task<Socket> OpenAsync(EndPoint endPoint)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(endPoint);
        await socket.SendAsync("GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray());
        var buffer = new byte[4096];
        var text = "";
        while (!text.EndsWith("Hello, World!", StringComparison.Ordinal))
        {
            var n = await socket.ReceiveAsync(buffer);
            if (n == 0)
            {
                throw new IOException("server closed an idle-test connection");
            }
            text += Encoding.ASCII.GetString(buffer, 0, n);
        }
        return socket;
    }

    private static async Task<(long Rss, long Heap)> StatsAsync(EndPoint endPoint)
    {
        using var client = new HttpClient();
        var text = await client.GetStringAsync($"http://{endPoint}/stats");
        var parts = text.Split(' ');
        return (long.Parse(parts[0], Inv), long.Parse(parts[1], Inv));
    }

    private static string Report(
        Dictionary<(string Path, int Connections, string Transport), List<double>> results,
        Dictionary<string, (double Rss, double Heap)> memory,
        string[] transports, string[] paths, int[] connections, int duration, int runs, int wrkThreads, int idle)
    {
        static double Median(List<double> values)
        {
            var sorted = values.Order().ToArray();
            return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
        }

        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"Requests/s, median of {runs} alternating {duration}-second `wrk -t{wrkThreads}` runs per cell, {Environment.ProcessorCount} cores; a ratio is the median of the per-round ratios (each round runs every transport back to back, so a busy moment on the machine hits both sides of a ratio):");
        sb.AppendLine();
        sb.Append("| response | connections |");
        foreach (var t in transports)
        {
            sb.Append(CultureInfo.InvariantCulture, $" {t} |");
        }
        foreach (var t in transports.Where(t => t != "sockets"))
        {
            sb.Append(CultureInfo.InvariantCulture, $" {t} / sockets |");
        }
        sb.AppendLine();
        sb.Append("| --- | --- |");
        sb.Append(string.Concat(Enumerable.Repeat(" ---: |", transports.Length * 2 - 1)));
        sb.AppendLine();
        foreach (var path in paths)
        {
            foreach (var c in connections)
            {
                sb.Append(CultureInfo.InvariantCulture, $"| {(path == "/plaintext" ? "plaintext (13 B)" : "64 KiB")} | {c} |");
                foreach (var t in transports)
                {
                    sb.Append(CultureInfo.InvariantCulture, $" {Median(results[(path, c, t)]):F0} |");
                }
                if (results.TryGetValue((path, c, "sockets"), out var baseline))
                {
                    foreach (var t in transports.Where(t => t != "sockets"))
                    {
                        var ratios = results[(path, c, t)].Zip(baseline, (x, y) => x / y).ToList();
                        sb.Append(CultureInfo.InvariantCulture, $" {Median(ratios):F2}x |");
                    }
                }
                sb.AppendLine();
            }
        }
        sb.AppendLine();
        sb.AppendLine(CultureInfo.InvariantCulture, $"Idle memory: growth of the server process from {idle} to {2 * idle} keep-alive connections that made one request each, after a full GC:");
        sb.AppendLine();
        sb.AppendLine("| transport | RSS bytes / connection | managed heap bytes / connection |");
        sb.AppendLine("| --- | ---: | ---: |");
        foreach (var t in transports)
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"| {t} | {memory[t].Rss:F0} | {memory[t].Heap:F0} |");
        }
        return sb.ToString();
    }

    /// <summary>A child process running <c>serve</c>; disposing closes its stdin, which stops it.</summary>
    private sealed class ServerProcess : IAsyncDisposable
    {
        private readonly Process _process;

        private ServerProcess(Process process, string transport, int port)
        {
            _process = process;
            Transport = transport;
            Port = port;
        }

        public string Transport { get; }

        public int Port { get; }

        public static async Task<ServerProcess> StartAsync(string transport, int port)
        {
            var self = Environment.ProcessPath!;
            var start = new ProcessStartInfo(self)
            {
                RedirectStandardInput = true,
                RedirectStandardOutput = true,
            };
            if (Path.GetFileNameWithoutExtension(self) == "dotnet")
            {
                start.ArgumentList.Add(typeof(Bench).Assembly.Location);
            }
            foreach (var a in new[] { "serve", "--transport", transport, "--port", port.ToString(Inv) })
            {
                start.ArgumentList.Add(a);
            }
            var process = Process.Start(start)!;
            var line = await process.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(30));
            if (line != "READY")
            {
                process.Kill();
                throw new InvalidOperationException($"server {transport} did not start: {line}");
            }
            return new ServerProcess(process, transport, port);
        }

        public async ValueTask DisposeAsync()
        {
            _process.StandardInput.Close();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(15));
            try
            {
                await _process.WaitForExitAsync(timeout.Token);
            }
            catch (OperationCanceledException)
            {
                _process.Kill();
            }
            _process.Dispose();
        }
    }
}
