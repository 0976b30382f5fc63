using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using NUnit.Framework;
using static PipeTransport.Tests.FdTestHelpers;

namespace PipeTransport.Tests;

/// <summary>
/// A steady-state read+write cycle allocates nothing, and an idle connection holds no pool blocks.
/// </summary>
/// <remarks>
/// The transport runs on the reactor threads and the thread pool, so allocation is measured for the
/// whole process (<see cref="GC.GetTotalAllocatedBytes(bool)"/>) around <see cref="Cycles"/> ping-pong
/// cycles of 64 bytes (one cycle: a writes and flushes, b reads and advances, b writes and flushes, a
/// reads and advances). The bound is "under one byte per cycle": the smallest .NET object is 24 bytes,
/// so this says no cycle allocates an object (nor one in 24), while leaving room for the few hundred
/// bytes that the measuring method itself and the test host allocate once per run.
/// </remarks>
[NonParallelizable]
public class AllocationTests
{
    /// <summary>
    /// Cycles per measured run. A cycle with the thread-pool transport wakes threads four times, which
    /// on a machine whose CPUs are busy can take milliseconds: the runs stay short enough for that.
    /// </summary>
    private const int Cycles = 2_000;

    /// <summary>Measured runs of <see cref="Cycles"/>; the least counts, so a one-off of the runtime's must come in every run to fail the test.</summary>
    private const int Runs = 5;
    private const int MessageSize = 64;

    public static IEnumerable<TestCaseData> Kinds()
    {
        yield return new TestCaseData("socketpair", true, ReactorPolling.Auto).SetArgDisplayNames("socketpair", "inline transport", "default reactors");
        yield return new TestCaseData("pipes", true, ReactorPolling.Auto).SetArgDisplayNames("anonymous pipes", "inline transport", "default reactors");
        yield return new TestCaseData("fifos", true, ReactorPolling.Auto).SetArgDisplayNames("FIFO pair", "inline transport", "default reactors");
        yield return new TestCaseData("unix", true, ReactorPolling.Auto).SetArgDisplayNames("Unix socket", "inline transport", "default reactors");
        yield return new TestCaseData("tcp", true, ReactorPolling.Auto).SetArgDisplayNames("TCP", "inline transport", "default reactors");
        yield return new TestCaseData("socketpair", false, ReactorPolling.Auto).SetArgDisplayNames("socketpair", "thread-pool transport", "default reactors");
        yield return new TestCaseData("socketpair", true, ReactorPolling.HandOffToThreadPool).SetArgDisplayNames("socketpair", "inline transport", "hand-off reactors");
        yield return new TestCaseData("tcp", true, ReactorPolling.HandOffToThreadPool).SetArgDisplayNames("TCP", "inline transport", "hand-off reactors");
        yield return new TestCaseData("fifos", true, ReactorPolling.HandOffToThreadPool).SetArgDisplayNames("FIFO pair", "inline transport", "hand-off reactors");
    }

    [TestCaseSource(nameof(Kinds)), CancelAfter(60_000)]
    public async Task A_steady_state_read_write_cycle_allocates_nothing(string kind, bool inlineTransport, ReactorPolling polling, CancellationToken ct)
    {
        var options = new FdConnectionOptions
        {
            InlineTransportScheduling = inlineTransport,
            ReactorGroup = FdKinds.Reactors(polling == ReactorPolling.HandOffToThreadPool ? FdKinds.HandOffReactors : FdKinds.DefaultReactors),
        };
        using var dir = new TempDirectory();
        (FdConnection a, FdConnection b) = await OpenAsync(kind, options, dir, ct);
        await using (a)
        await using (b)
        {
            // The loop does not pass ct to each call (a registration per call is the caller's cost,
            // not the transport's); cancellation aborts both ends, which ends any pending read.
            using CancellationTokenRegistration abort = ct.UnsafeRegister(_ => { a.Abort(); b.Abort(); }, null);
            byte[] message = RandomBytes(MessageSize, 7);
            await PingPongAsync(a, b, message, 2_000); // warm-up: JIT, tiering, pool blocks, pipe segments

            // Several runs, the least counts: a one-off (the shared pool growing by a block when the
            // thread-pool transport's receive loop briefly needs a second one; 1-7 KB now and then
            // from the runtime's or the test host's own threads) shows in one run, while anything a
            // cycle allocates shows in every run.
            var runs = new List<long>();
            for (int run = 0; run < Runs; run++)
            {
                long before = GC.GetTotalAllocatedBytes(precise: true);
                await PingPongAsync(a, b, message, Cycles);
                runs.Add(GC.GetTotalAllocatedBytes(precise: true) - before);
            }

            long allocated = runs.Min();
            TestContext.Out.WriteLine($"{kind}, inline={inlineTransport}, {polling}: {string.Join(", ", runs)} bytes over {Cycles} cycles; least {allocated / (double)Cycles:F3} bytes/cycle");
            Assert.That(allocated, Is.LessThan(Cycles), $"{allocated / (double)Cycles:F3} bytes per cycle");
        }
    }

    /// <summary>
    /// Bulk flushes (64 KiB, at <see cref="FdConnectionOptions.PoolSendThreshold"/>) resume the send
    /// loop on a pool thread; that hop, the reads and the flushes allocate nothing either.
    /// </summary>
    [TestCase("socketpair"), TestCase("tcp"), CancelAfter(60_000)]
    public async Task Bulk_flushes_sent_from_the_pool_allocate_nothing(string kind, CancellationToken ct)
    {
        const int flushes = 2_000;
        const int flushSize = 64 * 1024;
        const int blockSize = 60 * 1024; // a pool of its own: no other test rents from it

        // The pool makes a block whenever the blocks held at once reach a new peak, which depends on
        // how far the reader lags (up to both pipes' 1 MiB pause thresholds). Those are not per-flush
        // allocations: give the pool more blocks than the two pipes can ever hold, up front.
        PinnedBlockMemoryPool pool = PinnedBlockMemoryPool.ForBlockSize(blockSize);
        var owners = new List<IMemoryOwner<byte>>();
        for (int i = 0; i < 64; i++)
        {
            owners.Add(pool.Rent());
        }

        owners.ForEach(o => o.Dispose());
        using var dir = new TempDirectory();
        (FdConnection a, FdConnection b) = await OpenAsync(kind, new FdConnectionOptions { BufferSize = blockSize }, dir, ct);
        await using (a)
        await using (b)
        {
            using CancellationTokenRegistration abort = ct.UnsafeRegister(_ => { a.Abort(); b.Abort(); }, null);
            byte[] block = RandomBytes(flushSize, 3);

            async Task SendAsync(int count)
            {
                for (int i = 0; i < count; i++)
                {
                    a.Output.Write(block);
                    await a.Output.FlushAsync();
                }
            }

            async Task ReceiveAsync(long count)
            {
                while (count > 0)
                {
                    ReadResult result = await b.Input.ReadAsync();
                    count -= result.Buffer.Length;
                    b.Input.AdvanceTo(result.Buffer.End);
                }
            }

            await Task.WhenAll(SendAsync(500), ReceiveAsync(500L * flushSize)); // warm-up
            var runs = new List<long>();
            for (int run = 0; run < 3; run++)
            {
                long before = GC.GetTotalAllocatedBytes(precise: true);
                await Task.WhenAll(SendAsync(flushes), ReceiveAsync((long)flushes * flushSize));
                runs.Add(GC.GetTotalAllocatedBytes(precise: true) - before);
            }

            long allocated = runs.Min();
            TestContext.Out.WriteLine($"{kind}: {string.Join(", ", runs)} bytes over {flushes} flushes of 64 KiB; least {allocated / (double)flushes:F3} bytes/flush");
            Assert.That(allocated, Is.LessThan(flushes), $"{allocated / (double)flushes:F3} bytes per flush");
        }
    }

    /// <summary>
    /// A RawFd read that has to wait for readiness (the reactor wakes it) allocates nothing in a
    /// Release build. In a Debug build the compiler makes every async method's state machine a class,
    /// so each ReadAsync call allocates that one object (80 bytes, measured; 0 in Release): the bound
    /// is one such object per call there.
    /// </summary>
    [Test, CancelAfter(30_000)]
    public async Task A_RawFd_wait_for_readiness_allocates_nothing(CancellationToken ct)
    {
        (SafeFdHandle r, SafeFdHandle w) = Pipe();
        using (r)
        using (w)
        using (RawFd raw = RawFd.Create(r))
        {
            byte[] one = [42];
            byte[] buffer = new byte[1];
            int waited = 0;
            Func<int, bool> read = fd => ReadOnce(fd, buffer) > 0; // one delegate for the whole run

            async Task RunAsync(int waits)
            {
                for (int i = 0; i < waits; i++)
                {
                    ValueTask pending = raw.ReadAsync(read);
                    if (!pending.IsCompleted)
                    {
                        waited++;
                    }

                    WriteOnce(w.Fd, one);
                    await pending;
                }
            }

            await RunAsync(2_000);
            var runs = new List<long>();
            for (int run = 0; run < Runs; run++)
            {
                waited = 0;
                long before = GC.GetTotalAllocatedBytes(precise: true);
                await RunAsync(Cycles);
                runs.Add(GC.GetTotalAllocatedBytes(precise: true) - before);
            }

            long allocated = runs.Min();
            TestContext.Out.WriteLine($"RawFd: {string.Join(", ", runs)} bytes over {Cycles} waits ({waited} really waited); least {allocated / (double)Cycles:F3} bytes/wait");
            Assert.That(waited, Is.GreaterThan(Cycles / 2), "the reads really waited for the reactor");
#if DEBUG
            const int perWait = 96;
#else
            const int perWait = 0;
#endif
            Assert.That(allocated, Is.LessThan(Cycles * (perWait + 1L)), $"{allocated / (double)Cycles:F3} bytes per wait");
        }
    }

    [TestCase("socketpair"), TestCase("pipes"), TestCase("fifos"), TestCase("unix"), TestCase("tcp"), CancelAfter(10_000)]
    public async Task An_idle_connection_holds_no_pool_blocks(string kind, CancellationToken ct)
    {
        const int blockSize = 12 * 1024; // a pool of its own: no other test rents from it
        PinnedBlockMemoryPool pool = PinnedBlockMemoryPool.ForBlockSize(blockSize);
        long start = pool.Outstanding;
        var options = new FdConnectionOptions { BufferSize = blockSize };
        using var dir = new TempDirectory();
        (FdConnection a, FdConnection b) = await OpenAsync(kind, options, dir, ct);
        await using (a)
        await using (b)
        {
            Assert.That(pool.Outstanding, Is.EqualTo(start), "a new connection rents nothing");

            // Both receive loops start and wait for data: still nothing rented.
            ValueTask<ReadResult> readA = a.Input.ReadAsync(ct);
            ValueTask<ReadResult> readB = b.Input.ReadAsync(ct);
            Assert.That(readA.IsCompleted || readB.IsCompleted, Is.False);
            Assert.That(pool.Outstanding, Is.EqualTo(start), "a receive loop waiting for data rents nothing");

            byte[] message = RandomBytes(3000, 11);
            await a.Output.WriteAsync(message, ct);
            await b.Output.WriteAsync(message, ct);
            Assert.That(await ReadAllOfAsync(b.Input, readB, message.Length), Is.EqualTo(message));
            Assert.That(await ReadAllOfAsync(a.Input, readA, message.Length), Is.EqualTo(message));

            Assert.That(pool.Outstanding, Is.EqualTo(start), "every block went back once the data was consumed");
        }

        Assert.That(pool.Outstanding, Is.EqualTo(start));
    }

    /// <summary>
    /// Regression: ConnectAsync registered its socket with epoll before connect(); epoll reports
    /// EPOLLHUP for a stream socket that is not connected yet, the registration kept it as a hang-up
    /// seen, and the receive loop of an idle client then rented a block (64 KiB by default) to look
    /// for an EOF that was not there, and held it while waiting.
    /// </summary>
    [TestCase("unix"), TestCase("tcp"), CancelAfter(20_000)]
    public async Task Idle_connected_clients_hold_no_pool_blocks(string kind, CancellationToken ct)
    {
        const int blockSize = 28 * 1024; // a pool of its own
        const int clients = 50;
        PinnedBlockMemoryPool pool = PinnedBlockMemoryPool.ForBlockSize(blockSize);
        long start = pool.Outstanding;
        var options = new FdConnectionOptions { BufferSize = blockSize };
        using var dir = new TempDirectory();
        EndPoint endPoint = kind == "unix" ? new UnixDomainSocketEndPoint(dir.File("s")) : new IPEndPoint(IPAddress.Loopback, 0);
        var connections = new List<FdConnection>();
        var reads = new List<ValueTask<ReadResult>>();
        await using (FdListener listener = FdListener.Bind(endPoint, new FdListenerOptions { ConnectionOptions = options }))
        {
            try
            {
                for (int i = 0; i < clients; i++)
                {
                    ValueTask<FdConnection?> accept = listener.AcceptAsync(ct);
                    FdConnection client = await FdConnection.ConnectAsync(listener.LocalEndPoint, options, ct);
                    connections.Add(client);
                    connections.Add(await accept ?? throw new InvalidOperationException("listener closed"));
                    reads.Add(client.Input.ReadAsync(ct));
                }

                Assert.That(reads.Any(r => r.IsCompleted), Is.False);
                Assert.That(pool.Outstanding - start, Is.Zero, "blocks held by idle clients");
            }
            finally
            {
                foreach (FdConnection connection in connections)
                {
                    await connection.DisposeAsync();
                }
            }
        }
    }

    /// <summary>
    /// Regression: when the peer closes first, the receive loop rents a block for the read that
    /// returns EOF; the block stayed in the Input pipe, outstanding for ever, when the application
    /// disposed the connection without completing Input (disposal is meant to be enough).
    /// </summary>
    [TestCase("socketpair"), TestCase("pipes"), TestCase("fifos"), CancelAfter(10_000)]
    public async Task Disposal_returns_every_block_once_the_application_no_longer_holds_it(string kind, CancellationToken ct)
    {
        const int blockSize = 20 * 1024; // a pool of its own
        PinnedBlockMemoryPool pool = PinnedBlockMemoryPool.ForBlockSize(blockSize);
        long start = pool.Outstanding;
        var options = new FdConnectionOptions { BufferSize = blockSize };
        using var dir = new TempDirectory();
        (FdConnection a, FdConnection b) = await OpenAsync(kind, options, dir, ct);
        await using (a)
        {
            await b.DisposeAsync(); // the peer goes first

            ReadResult result = await a.Input.ReadAsync(ct);
            Assert.That(result.IsCompleted, Is.True);
            a.Input.AdvanceTo(result.Buffer.End);
            Memory<byte> unflushed = a.Output.GetMemory(100); // and something written but never flushed
            Assert.That(unflushed.Length, Is.GreaterThanOrEqualTo(100));
        }

        // The block GetMemory handed out is the application's until its Advance: never reused under it.
        Assert.That(pool.Outstanding, Is.EqualTo(start + 1));
        a.Output.Advance(100);
        Assert.That(pool.Outstanding, Is.EqualTo(start));
        Assert.That(() => a.Output.GetMemory(), Throws.InstanceOf<ObjectDisposedException>());
        FlushResult flushed = await a.Output.FlushAsync(ct);
        Assert.That(flushed.IsCompleted, Is.True, "a flush after disposal reports the reader gone");
    }

    private static async Task<byte[]> ReadAllOfAsync(PipeReader reader, ValueTask<ReadResult> pending, int length)
    {
        ReadResult result = await pending;
        while (result.Buffer.Length < length)
        {
            ThrowIfEnded(result);
            reader.AdvanceTo(result.Buffer.Start, result.Buffer.End);
            result = await reader.ReadAsync();
        }

        byte[] bytes = result.Buffer.Slice(0, length).ToArray();
        reader.AdvanceTo(result.Buffer.GetPosition(length));
        return bytes;
    }

    private static async Task<(FdConnection, FdConnection)> OpenAsync(string kind, FdConnectionOptions options, TempDirectory dir, CancellationToken ct)
    {
        switch (kind)
        {
            case "socketpair":
                return FdConnection.CreatePair(options);
            case "pipes":
                (SafeFdHandle r1, SafeFdHandle w1) = Pipe();
                (SafeFdHandle r2, SafeFdHandle w2) = Pipe();
                return (FdConnection.FromFds(r1, w2, options), FdConnection.FromFds(r2, w1, options));
            case "fifos":
                string x = dir.File("x");
                string y = dir.File("y");
                Fifo.Create(x);
                Fifo.Create(y);
                Task<FdConnection> first = FdConnection.OpenFifoAsync(x, y, options, ct).AsTask();
                FdConnection second = await FdConnection.OpenFifoAsync(y, x, options, ct);
                return (await first, second);
            case "unix":
            case "tcp":
                EndPoint endPoint = kind == "unix" ? new UnixDomainSocketEndPoint(dir.File("s")) : new IPEndPoint(IPAddress.Loopback, 0);
                await using (FdListener listener = FdListener.Bind(endPoint, new FdListenerOptions { ConnectionOptions = options }))
                {
                    ValueTask<FdConnection?> accept = listener.AcceptAsync(ct);
                    FdConnection client = await FdConnection.ConnectAsync(listener.LocalEndPoint, options, ct);
                    return (client, await accept ?? throw new InvalidOperationException("listener closed"));
                }

            default:
                throw new ArgumentOutOfRangeException(nameof(kind), kind, null);
        }
    }

    private static async Task PingPongAsync(FdConnection a, FdConnection b, byte[] message, int cycles)
    {
        // One async method for the whole run: a helper awaited per message would allocate its own
        // state machine box whenever it completes asynchronously, and that would be the test's cost.
        for (int i = 0; i < cycles; i++)
        {
            await a.Output.WriteAsync(message);
            while (true)
            {
                ReadResult result = await b.Input.ReadAsync();
                if (result.Buffer.Length >= message.Length)
                {
                    b.Input.AdvanceTo(result.Buffer.GetPosition(message.Length));
                    break;
                }

                ThrowIfEnded(result);
                b.Input.AdvanceTo(result.Buffer.Start, result.Buffer.End);
            }

            await b.Output.WriteAsync(message);
            while (true)
            {
                ReadResult result = await a.Input.ReadAsync();
                if (result.Buffer.Length >= message.Length)
                {
                    a.Input.AdvanceTo(result.Buffer.GetPosition(message.Length));
                    break;
                }

                ThrowIfEnded(result);
                a.Input.AdvanceTo(result.Buffer.Start, result.Buffer.End);
            }
        }
    }

    private static void ThrowIfEnded(ReadResult result)
    {
        if (result.IsCompleted || result.IsCanceled)
        {
            throw new EndOfStreamException("the peer ended the connection during the measurement");
        }
    }
}
