using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using PipeTransport.Perf.Harness;

namespace PipeTransport.Perf.Kestrel;

/// <summary>
/// Memory per idle keep-alive connection under Kestrel. Each run is a fresh
/// <c>kestrel-server</c> child; the harness opens <c>--connections</c>/2 connections that each make one
/// request and stay open, asks the server for its RSS and managed heap (after an aggressive compacting
/// GC), opens as many again and asks again. Only the second half is counted: the first absorbs one-time
/// growth (memory pools filling up to the concurrency of the connect bursts, thread-pool threads, JIT),
/// so the figure is the steady cost of one more idle connection. The servers run with tiered
/// compilation off (see <c>idle-tcp</c>).
/// </summary>
internal sealed class KestrelIdleScenario : IScenario
{
    private const int Burst = 100;

    // As in idle-tcp: tiered compilation would recompile hot methods in the background at varying
    // times and leave the JIT's scratch memory in the malloc heap, counted as "per connection"; both
    // servers compile every method once, fully optimised.
    private static readonly Dictionary<string, string> s_fullJit = new() { ["DOTNET_TieredCompilation"] = "0" };

    private IReadOnlyList<Variant>? _variants;

    public string Name => "kestrel-idle";

    public string Description => "Kestrel, RSS growth per idle keep-alive connection that made one request (server process only)";

    public string Unit => "bytes/conn";

    public bool HigherIsBetter => false;

    public string? SecondaryUnit => "managed heap bytes/conn";

    public IReadOnlyList<Variant> Variants => _variants ??=
    [
        new(KestrelTransports.DisplayName(KestrelTransports.Pipe), c => RunAsync(c, KestrelTransports.Pipe)),
        new(KestrelTransports.DisplayName(KestrelTransports.Sockets), c => RunAsync(c, KestrelTransports.Sockets), 1.0),
        new(KestrelTransports.DisplayName(KestrelTransports.PipeInline), c => RunAsync(c, KestrelTransports.PipeInline), Extra: true),
    ];

    private static async Task<Sample> RunAsync(RunContext context, string transport)
    {
        var ct = context.CancellationToken;
        int total = context.IsWarmup ? Math.Min(1000, context.Settings.Connections) : context.Settings.Connections;
        int half = Math.Max(1, total / 2);
        await using var server = await KestrelServerProcess.StartAsync(transport, s_fullJit, ct);
        var endPoint = new IPEndPoint(IPAddress.Loopback, server.Port);
        var sockets = new List<Socket>(2 * half);
        try
        {
            await OpenManyAsync(endPoint, half, sockets, ct);
            var (rss0, heap0) = await StatsAsync(endPoint, ct);
            await OpenManyAsync(endPoint, half, sockets, ct);
            var (rss1, heap1) = await StatsAsync(endPoint, ct);
            return new Sample((rss1 - rss0) / (double)half, Secondary: (heap1 - heap0) / (double)half);
        }
        finally
        {
            foreach (var socket in sockets)
            {
                socket.Dispose();
            }
        }
    }

    private static async Task OpenManyAsync(EndPoint endPoint, int count, List<Socket> sockets, CancellationToken ct)
    {
        for (int i = 0; i < count; i += Burst)
        {
            sockets.AddRange(await Task.WhenAll(Enumerable.Range(0, Math.Min(Burst, count - i)).Select(_ => OpenAsync(endPoint, ct))));
        }
    }

    /// <summary>A keep-alive connection that made one request and read the whole response.</summary>
    private static async Task<Socket> OpenAsync(EndPoint endPoint, CancellationToken ct)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            await socket.ConnectAsync(endPoint, ct);
            await socket.SendAsync("GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray(), ct);
            var buffer = new byte[512];
            var text = new StringBuilder();
            while (!text.ToString().EndsWith("Hello, World!", StringComparison.Ordinal))
            {
                int n = await socket.ReceiveAsync(buffer, ct);
                if (n == 0)
                {
                    throw new IOException("the server closed an idle-test connection");
                }

                text.Append(Encoding.ASCII.GetString(buffer, 0, n));
            }

            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private static async Task<(long Rss, long Heap)> StatsAsync(IPEndPoint endPoint, CancellationToken ct)
    {
        using var client = new HttpClient();
        string[] parts = (await client.GetStringAsync($"http://{endPoint}/stats", ct)).Split(' ');
        return (long.Parse(parts[0], CultureInfo.InvariantCulture), long.Parse(parts[1], CultureInfo.InvariantCulture));
    }
}
