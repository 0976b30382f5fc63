using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using NUnit.Framework;

namespace PipeTransport.Tests;

/// <summary>
/// One behaviour suite, run over every fd kind (FIFO pair, anonymous pipes, socketpair, Unix and
/// TCP sockets), each on the default reactors and on reactors that hand the polling to the thread
/// pool: the same tests, only the way the two ends are connected and polled differs.
/// </summary>
[TestFixtureSource(typeof(FdKinds), nameof(FdKinds.AllWithPolling))]
public sealed class BehaviourSuite
{
    private readonly string _kind;
    private readonly string _reactors;

    public BehaviourSuite(string kind, string reactors)
    {
        _kind = kind;
        _reactors = reactors;
    }

    /// <summary>This fixture's reactors (null: the default group; the hand-off group is shared and never disposed).</summary>
    private ReactorGroup? Reactors => FdKinds.Reactors(_reactors);

    /// <summary>The suite's options: the library's defaults on this fixture's reactors.</summary>
    private FdConnectionOptions Options() => new() { ReactorGroup = Reactors };

    [Test, CancelAfter(20_000)]
    public async Task Echo(CancellationToken ct)
    {
        await using ConnectedPair pair = await FdKinds.ConnectAsync(_kind, Options(), ct);
        Task echo = EchoAsync(pair.B, ct);
        for (int i = 0; i < 100; i++)
        {
            byte[] message = Encoding.UTF8.GetBytes($"message {i} " + new string('x', i * 37));
            await pair.A.Output.WriteAsync(message, ct);
            ReadResult result = await pair.A.Input.ReadAtLeastAsync(message.Length, ct);
            Assert.That(result.Buffer.ToArray(), Is.EqualTo(message));
            pair.A.Input.AdvanceTo(result.Buffer.End);
        }

        await pair.A.Output.CompleteAsync();
        await echo;
        ReadResult end = await pair.A.Input.ReadAsync(ct);
        Assert.That(end.IsCompleted, Is.True, "B completed its Output after A's EOF: A must see EOF");
        Assert.That(end.Buffer.IsEmpty, Is.True);
    }

    [TestCase(true), TestCase(false)]
    [CancelAfter(20_000)]
    public async Task HalfCloseKeepsTheOtherDirectionOpen(bool fromA, CancellationToken ct)
    {
        await using ConnectedPair pair = await FdKinds.ConnectAsync(_kind, Options(), ct);
        FdConnection closer = fromA ? pair.A : pair.B;
        FdConnection other = fromA ? pair.B : pair.A;

        await closer.Output.WriteAsync("last words"u8.ToArray(), ct);
        await closer.Output.CompleteAsync();

        // The other side reads everything, then EOF.
        var received = new List<byte>();
        while (true)
        {
            ReadResult result = await other.Input.ReadAsync(ct);
            received.AddRange(result.Buffer.ToArray());
            other.Input.AdvanceTo(result.Buffer.End);
            if (result.IsCompleted)
            {
                break;
            }
        }

        Assert.That(Encoding.UTF8.GetString(received.ToArray()), Is.EqualTo("last words"));

        // ... and can still talk back, in several writes, to a closer that still reads.
        for (int i = 0; i < 10; i++)
        {
            await other.Output.WriteAsync(Encoding.UTF8.GetBytes($"reply {i};"), ct);
        }

        await other.Output.CompleteAsync();
        var reply = new StringBuilder();
        while (true)
        {
            ReadResult result = await closer.Input.ReadAsync(ct);
            reply.Append(Encoding.UTF8.GetString(result.Buffer.ToArray()));
            closer.Input.AdvanceTo(result.Buffer.End);
            if (result.IsCompleted)
            {
                break;
            }
        }

        Assert.That(reply.ToString(), Is.EqualTo(string.Concat(Enumerable.Range(0, 10).Select(i => $"reply {i};"))));
        await WaitClosedAsync(closer, ct);
        await WaitClosedAsync(other, ct);
    }

    [Test, CancelAfter(120_000)]
    public async Task OneGibibyteEachWayArrivesIntact(CancellationToken ct)
    {
        const long size = 1L << 30;
        await using ConnectedPair pair = await FdKinds.ConnectAsync(_kind, Options(), ct);
        var sentAB = new TestData(1);
        var sentBA = new TestData(2);
        var receivedAB = new TestData(0);
        var receivedBA = new TestData(0);

        // Both directions at once, each consumer pausing at random.
        Task[] tasks =
        [
            Task.Run(async () => { await sentAB.WriteAsync(pair.A.Output, size, 11, ct); await pair.A.Output.CompleteAsync(); }, ct),
            Task.Run(async () => { await sentBA.WriteAsync(pair.B.Output, size / 4, 12, ct); await pair.B.Output.CompleteAsync(); }, ct),
            Task.Run(() => receivedAB.ReadToEndAsync(pair.B.Input, 13, ct), ct),
            Task.Run(() => receivedBA.ReadToEndAsync(pair.A.Input, 14, ct), ct),
        ];
        await Task.WhenAll(tasks);

        Assert.That(receivedAB.Length, Is.EqualTo(size));
        Assert.That(receivedAB.Hash, Is.EqualTo(sentAB.Hash));
        Assert.That(receivedBA.Length, Is.EqualTo(size / 4));
        Assert.That(receivedBA.Hash, Is.EqualTo(sentBA.Hash));
    }

    [Test, CancelAfter(30_000)]
    public async Task TransportStopsReadingWhileTheApplicationDoesNot(CancellationToken ct)
    {
        const int pause = 256 * 1024;
        const int block = 16 * 1024;
        var options = new FdConnectionOptions { InputPauseThreshold = pause, InputResumeThreshold = pause / 2, BufferSize = block, ReactorGroup = Reactors };
        await using ConnectedPair pair = await FdKinds.ConnectAsync(_kind, options, ct);

        // Far more than the pause threshold plus every kernel buffer on the way (loopback TCP can hold megabytes).
        long total = 64L << 20;
        var sent = new TestData(7);
        Task writer = Task.Run(async () => { await sent.WriteAsync(pair.A.Output, total, 3, ct); await pair.A.Output.CompleteAsync(); }, ct);

        // Pipe backpressure counts unexamined bytes: look without examining, like a stalled consumer.
        ReadResult first = await pair.B.Input.ReadAtLeastAsync(pause, ct);
        pair.B.Input.AdvanceTo(first.Buffer.Start);

        // Watch until nothing moves any more: the writer blocked, the kernel queue constant. Nothing
        // signals "stayed still", so this looks at the state at intervals; the assertions below are
        // about the state it finds, not about time.
        long buffered = 0;
        int queued = -1;
        for (int stable = 0; stable < 3;)
        {
            await Task.Delay(30, ct);
            Assert.That(pair.B.Input.TryRead(out ReadResult now), Is.True);
            pair.B.Input.AdvanceTo(now.Buffer.Start);
            int q = QueuedInKernel(pair.B);
            stable = now.Buffer.Length == buffered && q == queued ? stable + 1 : 0;
            buffered = now.Buffer.Length;
            queued = q;
        }

        Assert.That(writer.IsCompleted, Is.False, "the writer must be held back");
        Assert.That(buffered, Is.GreaterThanOrEqualTo(pause).And.LessThanOrEqualTo(pause + block),
            "the transport reads up to the pause threshold (plus at most one block) and then stops");
        Assert.That(queued, Is.GreaterThan(0), "what the transport does not read stays in the kernel (FIONREAD)");

        // Resume: consume everything; the writer finishes and every byte arrives.
        var received = new TestData(0);
        await received.ReadToEndAsync(pair.B.Input, 5, ct);
        await writer;
        Assert.That(received.Length, Is.EqualTo(total));
        Assert.That(received.Hash, Is.EqualTo(sent.Hash));
    }

    [Test, CancelAfter(20_000)]
    public async Task AbortCompletesBothPipesAndTellsThePeer(CancellationToken ct)
    {
        await using ConnectedPair pair = await FdKinds.ConnectAsync(_kind, Options(), ct);
        ValueTask<ReadResult> pendingRead = pair.A.Input.ReadAsync(ct);
        var closed = new TaskCompletionSource();
        pair.A.Closed.Register(() => closed.TrySetResult());

        var reason = new InvalidOperationException("enough");
        pair.A.Abort(reason);

        Assert.That(async () => await pendingRead, Throws.InstanceOf<InvalidOperationException>().With.Message.EqualTo("enough"));
        await closed.Task.WaitAsync(ct);
        Assert.That(pair.A.Closed.IsCancellationRequested, Is.True);

        // The peer sees the end of the stream (EOF, or a reset for sockets).
        try
        {
            while (true)
            {
                ReadResult result = await pair.B.Input.ReadAsync(ct);
                pair.B.Input.AdvanceTo(result.Buffer.End);
                if (result.IsCompleted)
                {
                    break;
                }
            }
        }
        catch (FdConnectionResetException)
        {
        }
    }

    [Test, CancelAfter(20_000)]
    public async Task DisposeCompletesPendingReadsAndFlushes(CancellationToken ct)
    {
        var options = new FdConnectionOptions { OutputPauseThreshold = 64 * 1024, OutputResumeThreshold = 32 * 1024, ReactorGroup = Reactors };
        await using ConnectedPair pair = await FdKinds.ConnectAsync(_kind, options, ct);
        ValueTask<ReadResult> pendingRead = pair.A.Input.ReadAsync(ct);

        // B never reads: A's write of far more than every buffer on the way cannot complete. Wait until
        // the kernel pushed back (the send loop waits for writability); the copy into the pipe may
        // still be going on, and disposal may land inside it.
        Task<FlushResult> pendingFlush = Task.Run(async () => await pair.A.Output.WriteAsync(new byte[64 << 20], ct), ct);
        while (!pair.A.SendBlocked)
        {
            await Task.Delay(1, ct);
        }

        Assert.That(pendingFlush.IsCompleted, Is.False);

        await pair.A.DisposeAsync();
        ReadResult read = await pendingRead;
        Assert.That(read.IsCompleted, Is.True);
        FlushResult flushed = await pendingFlush;
        Assert.That(flushed.IsCompleted, Is.True, "the pending flush completes: nobody will send what it holds");
        Assert.That(pair.A.Closed.IsCancellationRequested, Is.True);
    }

    private static int QueuedInKernel(FdConnection connection)
    {
        int queued = 0;
        connection.InputFd.Control(fd => queued = Interop.Sys.BytesAvailable(Interop.LinuxSyscalls.Instance, fd));
        return queued;
    }

    private static async Task WaitClosedAsync(FdConnection connection, CancellationToken ct)
    {
        var closed = new TaskCompletionSource();
        using CancellationTokenRegistration r = connection.Closed.Register(() => closed.TrySetResult());
        await closed.Task.WaitAsync(ct);
    }

    private static async Task EchoAsync(FdConnection connection, CancellationToken ct)
    {
        while (true)
        {
            ReadResult result = await connection.Input.ReadAsync(ct);
            foreach (ReadOnlyMemory<byte> segment in result.Buffer)
            {
                await connection.Output.WriteAsync(segment, ct);
            }

            connection.Input.AdvanceTo(result.Buffer.End);
            if (result.IsCompleted)
            {
                await connection.Output.CompleteAsync();
                return;
            }
        }
    }
}
