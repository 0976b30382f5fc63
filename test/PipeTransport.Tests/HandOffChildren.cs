using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using PipeTransport.HandOff;

namespace PipeTransport.Tests;

/// <summary>
/// The child programs of <see cref="HandOffTests"/>: generations of a server that take over from the
/// one before (through <see cref="HandOffClient"/>) and offer to the next (<see cref="HandOffServer"/>).
/// Control lines go to stderr; a FIFO consumer writes the bytes it read to stdout.
/// </summary>
internal static class HandOffChildren
{
    public static Task<int> RunAsync(string name, string[] args) => name switch
    {
        // handoff-listener HANDOFF_PATH UNIX_PATH MODE: an echo server on TCP 127.0.0.1 (SO_REUSEPORT) and UNIX_PATH.
        "handoff-listener" => ListenerAsync(args[0], args[1], args[2]),
        // handoff-fifo HANDOFF_PATH FIFO_PATH MODE: reads the FIFO to stdout.
        "handoff-fifo" => FifoConsumerAsync(args[0], args[1], args[2]),
        // handoff-takeover HANDOFF_PATH: tries a takeover and says what came of it.
        "handoff-takeover" => TakeOverOnlyAsync(args[0]),
        _ => throw new ArgumentException($"no child program '{name}'", nameof(name)),
    };

    private static void Say(string line)
    {
        Console.Error.WriteLine(line);
        Console.Error.Flush();
    }

    private static HandOffServerOptions ServerOptions() => new()
    {
        Timeout = TimeSpan.FromSeconds(30),
        Events = e => Say($"event {e.Kind} {e.Detail}"),
    };

    /// <summary>MODE "stop-after-offer": take the offer, say "offered", then wait to be killed.</summary>
    private static async Task StopAfterOfferAsync(HandOffTakeover takeover)
    {
        Say($"offered {string.Join(",", takeover.Names)}");
        await Task.Delay(Timeout.Infinite);
    }

    private static async Task<int> ListenerAsync(string handOffPath, string unixPath, string mode)
    {
        HandOffTakeover? takeover = await HandOffClient.TakeOverAsync(handOffPath);
        FdListener tcp, unix;
        if (takeover is null)
        {
            tcp = FdListener.Bind(new IPEndPoint(IPAddress.Loopback, 0), new FdListenerOptions { ReusePort = true });
            unix = FdListener.Bind(new UnixDomainSocketEndPoint(unixPath), new FdListenerOptions { UnixSocketMode = (UnixFileMode)0x1FF });
        }
        else
        {
            if (mode == "stop-after-offer")
            {
                await StopAfterOfferAsync(takeover);
            }

            tcp = takeover.TakeListener("tcp") ?? throw new InvalidOperationException("no tcp offered");
            unix = takeover.TakeListener("unix") ?? throw new InvalidOperationException("no unix offered");
        }

        // Serving starts before the commit: both processes accept from the same sockets for a while.
        var connections = new List<Task>();
        Task acceptTcp = AcceptAllAsync(tcp, connections);
        Task acceptUnix = AcceptAllAsync(unix, connections);
        if (takeover is not null)
        {
            await takeover.CommitAsync();
        }

        await using HandOffServer server = HandOffServer.Start(handOffPath, ServerOptions());
        server.Offer("tcp", tcp);
        server.Offer("unix", unix);
        Say($"serving {((IPEndPoint)tcp.LocalEndPoint).Port}");

        await server.HandedOff;
        await Task.WhenAll(acceptTcp, acceptUnix); // the listeners stopped accepting at the commit
        Task[] running;
        lock (connections)
        {
            running = [.. connections];
        }

        await Task.WhenAll(running);
        await tcp.DisposeAsync();
        await unix.DisposeAsync();
        if (takeover is not null)
        {
            await takeover.DisposeAsync();
        }

        Say("handed-off");
        return 0;
    }

    private static async Task AcceptAllAsync(FdListener listener, List<Task> connections)
    {
        while (await listener.AcceptAsync() is { } connection)
        {
            lock (connections)
            {
                connections.Add(ChildPrograms.EchoAsync(connection));
            }
        }
    }

    private static async Task<int> FifoConsumerAsync(string handOffPath, string fifoPath, string mode)
    {
        HandOffTakeover? takeover = await HandOffClient.TakeOverAsync(handOffPath);
        FdConnection fifo;
        if (takeover is null)
        {
            // Read end, a spare write end (no EOF between producers), and Output on a second write end (unused).
            fifo = await FdConnection.OpenFifoAsync(fifoPath, fifoPath, new FdConnectionOptions { KeepFifoReaderOpen = true });
        }
        else
        {
            if (mode == "stop-after-offer")
            {
                await StopAfterOfferAsync(takeover);
            }

            await takeover.CommitAsync();
            fifo = takeover.TakeConnection("fifo") ?? throw new InvalidOperationException("no fifo offered");
        }

        await using HandOffServer server = HandOffServer.Start(handOffPath, ServerOptions());
        server.Offer("fifo", fifo);
        Say("serving");

        // Until the hand-off ends Input (or the test ends this process).
        long received = 0;
        using Stream stdout = Console.OpenStandardOutput();
        while (true)
        {
            ReadResult read = await fifo.Input.ReadAsync();
            foreach (ReadOnlyMemory<byte> segment in read.Buffer)
            {
                await stdout.WriteAsync(segment);
            }

            received += read.Buffer.Length;
            fifo.Input.AdvanceTo(read.Buffer.End);
            if (read.IsCompleted)
            {
                break;
            }
        }

        await stdout.FlushAsync();
        await server.HandedOff;
        await fifo.DisposeAsync();
        if (takeover is not null)
        {
            await takeover.DisposeAsync();
        }

        Say($"handed-off {received}");
        return 0;
    }

    private static async Task<int> TakeOverOnlyAsync(string handOffPath)
    {
        try
        {
            await using HandOffTakeover? takeover = await HandOffClient.TakeOverAsync(handOffPath);
            Say(takeover is null ? "nothing" : $"offered {string.Join(",", takeover.Names)}");
            return 0;
        }
        catch (PipeTransportException e)
        {
            Say($"error {e.Errno} {e.Message}");
            return 3;
        }
    }
}
