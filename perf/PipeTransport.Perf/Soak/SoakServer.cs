using System.Globalization;
using System.Net;
using System.Threading.Channels;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using PipeTransport.Perf.Kestrel;

namespace PipeTransport.Perf.Soak;

/// <summary>
/// Child mode <c>soak-server pipe|sockets FIFO_IN FIFO_OUT</c>: the process under test in the soak.
/// Kestrel with <c>UsePipeTransport()</c> (or, for comparison, its Sockets transport) on a loopback port
/// (<c>/plaintext</c>, <c>/64k</c>, <c>/echo</c> streams the request body back, <c>/big?n=N</c> streams
/// N bytes) and, beside it, a FIFO bridge: one
/// <see cref="FdConnection.OpenFifoAsync"/> conversation after another, Input copied to Output.
/// Everything it has to say goes to stdout, one line each (no fd is needed for that at the fd limit):
/// <c>ready PORT</c>; every second <c>stat GC_HEAP HEAP_AT_LAST_GC CLIENT_ABORTS</c>; <c>fifo-done K BYTES</c>
/// or <c>fifo-error K ERRNO MESSAGE</c> after FIFO conversation K is disposed; <c>app-error</c> and
/// <c>log</c> lines for what it did not expect. Stdin: <c>fifo</c> opens the next FIFO conversation; <c>gc</c> runs a full blocking collection and answers <c>live HEAP FDS CONNECTIONS FIFO_FDS POOL_CACHED</c>
/// (the managed heap that survived, its open fds, the connections Kestrel serves, the FIFO
/// conversation's fds and the bytes of the blocks the transport's pool keeps for reuse, all of one
/// moment); EOF stops it.
/// </summary>
internal static class SoakServer
{
    public const int PatternLength = 64 * 1024;
    private static readonly byte[] s_hello = "Hello, World!"u8.ToArray();
    private static readonly byte[] s_64k = SoakData.Pattern();
    private static long s_clientAborts;
    private static long s_connections;
    private static int s_fifoOpen;

    public static async Task<int> RunAsync(string transport, string fifoIn, string fifoOut)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Logging.AddProvider(new SoakServerLog());
        builder.WebHost.ConfigureKestrel(k =>
        {
            // Counts the connections Kestrel serves, so a checkpoint can tell fds held by a connection from the rest.
            k.Listen(IPAddress.Loopback, 0, o => o.Use(next => async connection =>
            {
                Interlocked.Increment(ref s_connections);
                try
                {
                    await next(connection);
                }
                finally
                {
                    Interlocked.Decrement(ref s_connections);
                }
            }));
            k.AddServerHeader = false;
        });
        if (transport == KestrelTransports.Pipe)
        {
            builder.WebHost.UsePipeTransport();
        }
        await using var app = builder.Build();
        app.Run(HandleAsync);
        await app.StartAsync();
        int port = new Uri(app.Urls.First(u => u.StartsWith("http://127.", StringComparison.Ordinal))).Port;
        Say(string.Create(CultureInfo.InvariantCulture, $"ready {port}"));

        using var stop = new CancellationTokenSource();
        var conversations = Channel.CreateUnbounded<int>();
        var stats = ReportStatsAsync(stop.Token);
        var bridge = BridgeFifosAsync(fifoIn, fifoOut, conversations.Reader, stop.Token);
        int requested = 0;
        while (await Console.In.ReadLineAsync() is { } command)
        {
            if (command == "gc")
            {
                GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
                GC.WaitForPendingFinalizers();
                GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
                // One fd is the directory being listed.
                int fds = Directory.EnumerateFileSystemEntries("/proc/self/fd").Count() - 1;
                long poolCached = (new FdConnectionOptions().MemoryPool as PinnedBlockMemoryPool)?.CachedBytes ?? 0;
                Say(string.Create(CultureInfo.InvariantCulture,
                    $"live {GC.GetTotalMemory(forceFullCollection: false)} {fds} {Interlocked.Read(ref s_connections)} {2 * Volatile.Read(ref s_fifoOpen)} {poolCached}"));
            }
            else if (command == "fifo")
            {
                conversations.Writer.TryWrite(++requested);
            }
        }

        await stop.CancelAsync();
        await Task.WhenAll(stats, bridge);
        await app.StopAsync();
        return 0;
    }

    /// <summary>Writes one line; Console.Out is synchronized, so lines from several threads never mix.</summary>
    public static void Say(string line)
    {
        Console.Out.WriteLine(line);
        Console.Out.Flush();
    }

    private static async Task HandleAsync(HttpContext context)
    {
        try
        {
            switch (context.Request.Path.Value)
            {
                case "/plaintext":
                    await WriteAsync(context, s_hello);
                    break;
                case "/64k":
                    await WriteAsync(context, s_64k);
                    break;
                case "/echo":
                    await EchoAsync(context);
                    break;
                case "/big":
                    await BigAsync(context);
                    break;
                default:
                    context.Response.StatusCode = 404;
                    break;
            }
        }
        catch (Exception e) when (IsClientGone(e, context))
        {
            // The chaos clients abort mid-request and mid-response: what a server sees from real clients.
            Interlocked.Increment(ref s_clientAborts);
        }
        catch (Exception e)
        {
            Say($"app-error {e.GetType().Name} {OneLine(e.ToString())}");
            throw;
        }
    }

    private static bool IsClientGone(Exception e, HttpContext context) =>
        e is ConnectionResetException or BadHttpRequestException
        || (e is OperationCanceledException or IOException && context.RequestAborted.IsCancellationRequested);

    private static async Task WriteAsync(HttpContext context, byte[] body)
    {
        context.Response.ContentType = "text/plain";
        context.Response.ContentLength = body.Length;
        await context.Response.Body.WriteAsync(body, context.RequestAborted);
    }

    /// <summary>
    /// Streams the request body back as it comes (chunked), so a large upload costs the server no more
    /// than its pipes: a checkpoint would otherwise count the bodies of the uploads in flight.
    /// </summary>
    private static async Task EchoAsync(HttpContext context)
    {
        context.Response.ContentType = "application/octet-stream";
        var input = context.Request.BodyReader;
        var output = context.Response.BodyWriter;
        while (true)
        {
            // No RequestAborted here: a read cancelled by it leaves Kestrel's body reader "in progress",
            // and Kestrel logs an error when it drains the body (on either transport). Kestrel ends the
            // read itself when the client goes.
            var read = await input.ReadAsync();
            try
            {
                foreach (var segment in read.Buffer)
                {
                    await output.WriteAsync(segment, context.RequestAborted);
                }
            }
            finally
            {
                // Also when the client went away mid-write: a read never advanced leaves the body reader
                // "in progress", and Kestrel logs an error when it drains the body.
                input.AdvanceTo(read.Buffer.End);
            }

            if (read.IsCompleted)
            {
                break;
            }
        }
    }

    private static async Task BigAsync(HttpContext context)
    {
        long size = long.Parse(context.Request.Query["n"].ToString(), CultureInfo.InvariantCulture);
        context.Response.ContentType = "application/octet-stream";
        context.Response.ContentLength = size;
        for (long sent = 0; sent < size;)
        {
            int n = (int)Math.Min(s_64k.Length, size - sent);
            await context.Response.Body.WriteAsync(s_64k.AsMemory(0, n), context.RequestAborted);
            sent += n;
        }
    }

    private static async Task ReportStatsAsync(CancellationToken stop)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
        try
        {
            while (await timer.WaitForNextTickAsync(stop))
            {
                long heapAtLastGc = GC.GetGCMemoryInfo(GCKind.Any).HeapSizeBytes;
                Say(string.Create(CultureInfo.InvariantCulture,
                    $"stat {GC.GetTotalMemory(forceFullCollection: false)} {heapAtLastGc} {Interlocked.Read(ref s_clientAborts)}"));
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>
    /// The FIFO bridge: one conversation on the two FIFOs per "fifo" command, each opened only once the
    /// previous one is disposed, so the feeder (which asks for the next one after it saw the end of the
    /// last) never meets a read end that is about to close. "fifo-done"/"fifo-error" come after disposal.
    /// </summary>
    private static async Task BridgeFifosAsync(string fifoIn, string fifoOut, ChannelReader<int> conversations, CancellationToken stop)
    {
        try
        {
            while (true)
            {
                int k = await conversations.ReadAsync(stop);
                string end;
                try
                {
                    long bytes = await CopyConversationAsync(fifoIn, fifoOut, stop);
                    end = string.Create(CultureInfo.InvariantCulture, $"fifo-done {k} {bytes}");
                }
                catch (Exception e) when (e is not OperationCanceledException || !stop.IsCancellationRequested)
                {
                    // At the fd limit the open fails with EMFILE: the feeder classifies it by when it came.
                    string errno = e is PipeTransportException p ? p.Errno.ToString() : e.GetType().Name;
                    end = string.Create(CultureInfo.InvariantCulture, $"fifo-error {k} {errno} {OneLine(e.Message)}");
                }

                Say(end);
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
    }

    private static async Task<long> CopyConversationAsync(string fifoIn, string fifoOut, CancellationToken stop)
    {
        await using var connection = await FdConnection.OpenFifoAsync(fifoIn, fifoOut, cancellationToken: stop);
        using var open = new FifoOpenScope();
        long bytes = 0;
        while (true)
        {
            var read = await connection.Input.ReadAsync(stop);
            foreach (var segment in read.Buffer)
            {
                await connection.Output.WriteAsync(segment, stop);
            }

            bytes += read.Buffer.Length;
            connection.Input.AdvanceTo(read.Buffer.End);
            if (read.IsCompleted)
            {
                break;
            }
        }

        await connection.Output.CompleteAsync();
        await connection.Input.CompleteAsync();
        return bytes;
    }

    public static string OneLine(string text) => text.ReplaceLineEndings(" | ");

    /// <summary>Marks the FIFO conversation's two fds open until disposed (before the connection is).</summary>
    private readonly struct FifoOpenScope : IDisposable
    {
        public FifoOpenScope() => Volatile.Write(ref s_fifoOpen, 1);

        public void Dispose() => Volatile.Write(ref s_fifoOpen, 0);
    }
}
