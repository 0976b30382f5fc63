using System.Globalization;
using System.Net;
using System.Net.Sockets;
using PipeTransport.Perf.Harness;

namespace PipeTransport.Perf.Children;

/// <summary>
/// Child mode <c>idle-server fd|socket COUNT</c>: listens on the TCP loopback, warms up, measures
/// RSS and the managed heap with a base batch of COUNT/5 held connections (after the JIT settles), has
/// an <c>idle-clients</c> child open COUNT more connections, holds every accepted connection with a
/// pending read, measures again and prints
/// "result RSS_BYTES_PER_CONN HEAP_BYTES_PER_CONN".
/// </summary>
internal static class IdleServer
{
    private const int WarmupConnections = 64;

    public static async Task<int> RunAsync(string kind, int count)
    {
        OpenFileLimit.Require(count + 256);
        await using IIdleServer server = kind == "fd" ? new FdIdleServer() : new SocketIdleServer();
        var endPoint = (IPEndPoint)server.LocalEndPoint;

        // Warm-up: every code path an accepted, held connection takes is jitted and every pool has
        // grown once before the first measurement.
        var warmups = new List<Socket>();
        for (int i = 0; i < WarmupConnections; i++)
        {
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await socket.ConnectAsync(endPoint);
            warmups.Add(socket);
        }

        await server.AcceptAndHoldAsync(WarmupConnections);
        warmups.ForEach(s => s.Dispose());
        await server.ReleaseAllAsync();

        // A base batch stays open while the code settles (tiered JIT recompiles hot methods in the
        // background, and the JIT's scratch memory stays in the malloc heap): the result is the
        // marginal cost of one more idle connection, not one-time costs spread over the count.
        int baseCount = Math.Max(count / 5, WarmupConnections);
        await using var baseClients = ChildProcess.StartSelf(true, "idle-clients", endPoint.Port.ToString(CultureInfo.InvariantCulture),
            baseCount.ToString(CultureInfo.InvariantCulture));
        await server.AcceptAndHoldAsync(baseCount);
        await baseClients.ExpectAsync("connected", CancellationToken.None);
        await WaitForJitToSettleAsync();

        var (rss0, heap0) = Measure();
        await using var clients = ChildProcess.StartSelf(true, "idle-clients", endPoint.Port.ToString(CultureInfo.InvariantCulture),
            count.ToString(CultureInfo.InvariantCulture));
        await server.AcceptAndHoldAsync(count);
        await clients.ExpectAsync("connected", CancellationToken.None);
        var (rss1, heap1) = Measure();

        Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"result {(rss1 - rss0) / (double)count:0} {(heap1 - heap0) / (double)count:0}"));
        return 0;
    }

    /// <summary>Waits (up to 10 s) until no method has been compiled for half a second.</summary>
    private static async Task WaitForJitToSettleAsync()
    {
        long compiled = System.Runtime.JitInfo.GetCompiledMethodCount();
        for (int i = 0; i < 20; i++)
        {
            await Task.Delay(500);
            long now = System.Runtime.JitInfo.GetCompiledMethodCount();
            if (now == compiled)
            {
                return;
            }

            compiled = now;
        }
    }

    private static (long Rss, long Heap) Measure()
    {
        // Aggressive: compact and give free GC memory back to the OS, so RSS counts what the
        // connections hold rather than garbage left by accepting them.
        GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
        GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        long heap = GC.GetTotalMemory(forceFullCollection: true);
        string[] statm = File.ReadAllText("/proc/self/statm").Split(' ');
        return (long.Parse(statm[1], CultureInfo.InvariantCulture) * Environment.SystemPageSize, heap);
    }
}
