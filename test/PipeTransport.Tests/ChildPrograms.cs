using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using Microsoft.Win32.SafeHandles;

namespace PipeTransport.Tests;

/// <summary>Programs a test runs as a real child process (<c>dotnet PipeTransport.Tests.dll --child NAME ARGS</c>).</summary>
internal static class ChildPrograms
{
    private const int PoolThreads = 16;

    public static Task<int> RunAsync(string name, string[] args) => name switch
    {
        "echo-listener" => EchoListenerAsync(bool.Parse(args[0]), int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture)),
        "errors-at-emfile" => ErrorsAtEmfileAsync(args[0]),
        _ when name.StartsWith("handoff-", StringComparison.Ordinal) => HandOffChildren.RunAsync(name, args),
        _ => throw new ArgumentException($"no child program '{name}'", nameof(name)),
    };

    /// <summary>
    /// An echo server on an <see cref="FdListener"/> at 127.0.0.1: prints <c>listening PORT</c>, then the
    /// listener's pauses and resumptions; stops when stdin closes.
    /// </summary>
    private static async Task<int> EchoListenerAsync(bool reusePort, int headroom)
    {
        var options = new FdListenerOptions
        {
            ReusePort = reusePort,
            FdHeadroom = headroom,
            Events = e =>
            {
                if (e.Kind != FdListenerEventKind.AcceptError)
                {
                    Console.WriteLine($"{e.Kind} {e.Errno}");
                }
            },
        };
        await using FdListener listener = FdListener.Bind(new IPEndPoint(IPAddress.Loopback, 0), options);
        using var stop = new CancellationTokenSource();
        StopOnStdinEof(stop);
        Console.WriteLine($"listening {((IPEndPoint)listener.LocalEndPoint).Port}");
        try
        {
            while (await listener.AcceptAsync(stop.Token) is { } connection)
            {
                _ = EchoAsync(connection);
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }

        return 0;
    }

    /// <summary>Echoes until the peer half-closes, then half-closes; a reset ends it quietly.</summary>
    internal static async Task EchoAsync(FdConnection connection)
    {
        await using (connection)
        {
            try
            {
                while (true)
                {
                    ReadResult read = await connection.Input.ReadAsync();
                    foreach (ReadOnlyMemory<byte> segment in read.Buffer)
                    {
                        await connection.Output.WriteAsync(segment);
                    }

                    connection.Input.AdvanceTo(read.Buffer.End);
                    if (read.IsCompleted)
                    {
                        break;
                    }
                }

                await connection.Output.CompleteAsync();
            }
            catch (IOException)
            {
                // a client that reset
            }
        }
    }

    /// <summary>
    /// Fills its own fd table, then takes error paths that fail with EMFILE or need no fd, and accepts
    /// at EMFILE (the test connects the second client once the table is full), printing each outcome as
    /// <c>WHAT: TYPE: MESSAGE</c>; last, whether Mono.Posix's native helper was loaded.
    /// </summary>
    private static async Task<int> ErrorsAtEmfileAsync(string dir)
    {
        string fifo = Path.Combine(dir, "fifo");
        Fifo.Create(fifo);
        int paused = 0;
        var bothPaused = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        FdListenerOptions Options(bool reusePort) => new()
        {
            FdHeadroom = 0,
            ReusePort = reusePort,
            Events = e =>
            {
                Console.WriteLine($"event {e.Kind} {e.Errno}");
                if (e.Kind == FdListenerEventKind.FdLimitEntered && Interlocked.Increment(ref paused) == 2)
                {
                    bothPaused.TrySetResult();
                }
            },
        };
        await using FdListener listener = FdListener.Bind(new IPEndPoint(IPAddress.Loopback, 0), Options(reusePort: false));
        await using FdListener reusingPort = FdListener.Bind(new IPEndPoint(IPAddress.Loopback, 0), Options(reusePort: true));
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        client.Connect(listener.LocalEndPoint); // waits in the backlog
        Console.WriteLine("filling the fd table");
        // Pool threads are started now (they idle 20 s before they retire): the runtime aborts when it must start one at the fd limit.
        ThreadPool.SetMinThreads(PoolThreads, PoolThreads);
        using (var started = new Barrier(PoolThreads))
        {
            await Task.WhenAll(Enumerable.Range(0, PoolThreads).Select(_ => Task.Run(() => started.SignalAndWait())));
        }

        var filler = new List<SafeFileHandle>();
        try
        {
            while (true)
            {
                filler.Add(File.OpenHandle("/dev/null"));
            }
        }
        catch (IOException)
        {
        }

        // The SO_REUSEPORT listener's loops accept ahead of the caller: its client comes now, from the test.
        Console.WriteLine($"filled; connect to {((IPEndPoint)reusingPort.LocalEndPoint).Port}");
        Report("mkfifo", () => Fifo.Create(Path.Combine(dir, "missing", "fifo")));
        Report("bind", () => FdListener.Bind(new IPEndPoint(IPAddress.Loopback, 0)));
        Report("connect", () => FdConnection.ConnectAsync(listener.LocalEndPoint).AsTask().GetAwaiter().GetResult());
        Report("open", () => Fifo.OpenAsync(fifo, FileAccess.Read).AsTask().GetAwaiter().GetResult());
        Report("pair", () => FdConnection.CreatePair());

        // At EMFILE an accept waits (both kinds of listener), and takes the client once an fd is free.
        ValueTask<FdConnection?> accept = listener.AcceptAsync();
        ValueTask<FdConnection?> acceptReusingPort = reusingPort.AcceptAsync();
        await bothPaused.Task;
        // Fds this library does not own come free: the listeners see it on their next retry.
        var freed = System.Diagnostics.Stopwatch.StartNew();
        filler[^1].Dispose();
        filler[^2].Dispose();
        await using (FdConnection? accepted = await accept)
        await using (FdConnection? acceptedReusingPort = await acceptReusingPort)
        {
            Console.WriteLine($"accepted: {accepted is not null} {acceptedReusingPort is not null}");
            Console.WriteLine($"accepted after ms: {freed.ElapsedMilliseconds}");
        }

        foreach (SafeFileHandle handle in filler)
        {
            handle.Dispose();
        }

        Console.WriteLine($"MonoPosixHelper loaded: {File.ReadAllText("/proc/self/maps").Contains("MonoPosixHelper", StringComparison.Ordinal)}");
        return 0;
    }

    private static void Report(string what, Action action)
    {
        try
        {
            action();
            Console.WriteLine($"{what}: no error");
        }
        catch (Exception e)
        {
            Console.WriteLine($"{what}: {e.GetType().Name}: {e.Message}");
        }
    }

    /// <summary>Cancels <paramref name="stop"/> when stdin reaches EOF, on a thread started now (none needs starting at the fd limit).</summary>
    private static void StopOnStdinEof(CancellationTokenSource stop) =>
        new Thread(() =>
        {
            Console.In.ReadToEnd();
            stop.Cancel();
        })
        { IsBackground = true }.Start();
}
