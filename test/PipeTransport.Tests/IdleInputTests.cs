using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using NUnit.Framework;

namespace PipeTransport.Tests;

/// <summary>
/// A read of Input that finds nothing waits without a pipe, a buffer or a receive loop (the parked
/// read); the first bytes, the peer's EOF, cancellation, <c>CancelPendingRead</c>, abort and disposal
/// each end that wait the way a pipe read would end, over every fd kind and both application schedulers.
/// </summary>
[TestFixtureSource(typeof(FdKinds), nameof(FdKinds.All))]
public sealed class IdleInputTests
{
    private readonly string _kind;

    public IdleInputTests(string kind) => _kind = kind;

    public static IEnumerable<TestCaseData> Schedulers()
    {
        yield return new TestCaseData(false).SetArgDisplayNames("thread-pool application scheduler");
        yield return new TestCaseData(true).SetArgDisplayNames("inline application scheduler");
    }

    private static FdConnectionOptions Options(bool inlineApplication) =>
        new() { ApplicationScheduler = inlineApplication ? PipeScheduler.Inline : PipeScheduler.ThreadPool };

    [TestCaseSource(nameof(Schedulers)), CancelAfter(20_000)]
    public async Task A_parked_read_holds_no_pipe_and_returns_the_first_bytes(bool inlineApplication, CancellationToken ct)
    {
        await using ConnectedPair pair = await FdKinds.ConnectAsync(_kind, Options(inlineApplication), ct);
        ValueTask<ReadResult> read = pair.B.Input.ReadAsync(ct);
        Assert.That(read.IsCompleted, Is.False);
        Assert.That(pair.B.InputPipeMade, Is.False, "an idle connection has no Input pipe");

        await pair.A.Output.WriteAsync(Encoding.ASCII.GetBytes("hello"), ct);
        ReadResult result = await read;
        Assert.That(Encoding.ASCII.GetString(result.Buffer), Is.EqualTo("hello"));
        Assert.That(pair.B.InputPipeMade, Is.True);
        pair.B.Input.AdvanceTo(result.Buffer.End);

        // From now on reads go to the pipe: the next bytes and then EOF.
        await pair.A.Output.WriteAsync(Encoding.ASCII.GetBytes(" world"), ct);
        await pair.A.Output.CompleteAsync();
        Assert.That(Encoding.ASCII.GetString(await FdTestHelpers.ReadToEndAsync(pair.B.Input, ct)), Is.EqualTo(" world"));
    }

    [TestCaseSource(nameof(Schedulers)), CancelAfter(20_000)]
    public async Task A_parked_read_sees_the_peers_eof(bool inlineApplication, CancellationToken ct)
    {
        await using ConnectedPair pair = await FdKinds.ConnectAsync(_kind, Options(inlineApplication), ct);
        ValueTask<ReadResult> read = pair.B.Input.ReadAsync(ct);
        Assert.That(read.IsCompleted, Is.False);

        await pair.A.Output.CompleteAsync();
        ReadResult result = await read;
        Assert.That(result.IsCompleted, Is.True);
        Assert.That(result.Buffer.IsEmpty, Is.True);
    }

    [TestCaseSource(nameof(Schedulers)), CancelAfter(20_000)]
    public async Task A_cancelled_parked_read_throws_and_the_next_read_gets_the_bytes(bool inlineApplication, CancellationToken ct)
    {
        await using ConnectedPair pair = await FdKinds.ConnectAsync(_kind, Options(inlineApplication), ct);
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(ct);
        ValueTask<ReadResult> read = pair.B.Input.ReadAsync(cancel.Token);
        Assert.That(read.IsCompleted, Is.False);

        await cancel.CancelAsync();
        Assert.That(async () => await read, Throws.InstanceOf<OperationCanceledException>());
        Assert.That(pair.B.InputPipeMade, Is.False, "cancelling a wait does not make the pipe");

        await pair.A.Output.WriteAsync(new byte[] { 1, 2, 3 }, ct);
        ReadResult result = await pair.B.Input.ReadAtLeastAsync(3, ct);
        Assert.That(result.Buffer.ToArray(), Is.EqualTo(new byte[] { 1, 2, 3 }));
        pair.B.Input.AdvanceTo(result.Buffer.End);
    }

    [TestCaseSource(nameof(Schedulers)), CancelAfter(20_000)]
    public async Task CancelPendingRead_ends_a_parked_read_as_cancelled(bool inlineApplication, CancellationToken ct)
    {
        await using ConnectedPair pair = await FdKinds.ConnectAsync(_kind, Options(inlineApplication), ct);
        ValueTask<ReadResult> read = pair.B.Input.ReadAsync(ct);
        Assert.That(read.IsCompleted, Is.False);

        pair.B.Input.CancelPendingRead();
        ReadResult cancelled = await read;
        Assert.That(cancelled.IsCanceled, Is.True);
        Assert.That(cancelled.IsCompleted, Is.False);
        pair.B.Input.AdvanceTo(cancelled.Buffer.End);

        // A CancelPendingRead before the read cancels that read, as with a pipe.
        pair.B.Input.CancelPendingRead();
        ReadResult early = await pair.B.Input.ReadAsync(ct);
        Assert.That(early.IsCanceled, Is.True);
        pair.B.Input.AdvanceTo(early.Buffer.End);

        await pair.A.Output.WriteAsync(new byte[] { 9 }, ct);
        ReadResult result = await pair.B.Input.ReadAsync(ct);
        Assert.That(result.IsCanceled, Is.False);
        Assert.That(result.Buffer.ToArray(), Is.EqualTo(new byte[] { 9 }));
        pair.B.Input.AdvanceTo(result.Buffer.End);
    }

    [TestCaseSource(nameof(Schedulers)), CancelAfter(20_000)]
    public async Task Abort_fails_a_parked_read_with_the_reason(bool inlineApplication, CancellationToken ct)
    {
        await using ConnectedPair pair = await FdKinds.ConnectAsync(_kind, Options(inlineApplication), ct);
        ValueTask<ReadResult> read = pair.B.Input.ReadAsync(ct);
        Assert.That(read.IsCompleted, Is.False);

        var reason = new InvalidOperationException("stop");
        pair.B.Abort(reason);
        Assert.That(async () => await read, Throws.Exception.SameAs(reason));
    }

    [TestCaseSource(nameof(Schedulers)), CancelAfter(20_000)]
    public async Task Disposal_completes_a_parked_read(bool inlineApplication, CancellationToken ct)
    {
        await using ConnectedPair pair = await FdKinds.ConnectAsync(_kind, Options(inlineApplication), ct);
        ValueTask<ReadResult> read = pair.B.Input.ReadAsync(ct);
        Assert.That(read.IsCompleted, Is.False);

        Task disposed = pair.B.DisposeAsync().AsTask();
        ReadResult result = await read;
        Assert.That(result.IsCompleted, Is.True);
        await disposed;
    }

    [Test, CancelAfter(20_000)]
    public async Task TryRead_on_an_idle_connection_says_no_and_the_bytes_come_later(CancellationToken ct)
    {
        await using ConnectedPair pair = await FdKinds.ConnectAsync(_kind, null, ct);
        Assert.That(pair.B.Input.TryRead(out _), Is.False);
        Assert.That(pair.B.InputPipeMade, Is.False);

        await pair.A.Output.WriteAsync(new byte[] { 5, 6 }, ct);
        ReadResult result = await pair.B.Input.ReadAtLeastAsync(2, ct);
        Assert.That(result.Buffer.ToArray(), Is.EqualTo(new byte[] { 5, 6 }));
        pair.B.Input.AdvanceTo(result.Buffer.End);
    }

    [Test, CancelAfter(20_000)]
    public async Task Parking_a_read_allocates_nothing(CancellationToken ct)
    {
        // Warm-up on a first pair (JIT, first-use statics), then measure the park on a fresh one.
        await using (ConnectedPair warm = await FdKinds.ConnectAsync(_kind, null, ct))
        {
            ValueTask<ReadResult> parked = warm.B.Input.ReadAsync();
            warm.B.Input.CancelPendingRead();
            warm.B.Input.AdvanceTo((await parked).Buffer.End);
        }

        await using ConnectedPair pair = await FdKinds.ConnectAsync(_kind, null, ct);
        long before = GC.GetAllocatedBytesForCurrentThread();
        ValueTask<ReadResult> read = pair.B.Input.ReadAsync();
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.That(read.IsCompleted, Is.False);
        Assert.That(allocated, Is.Zero, "a parked read is the reader itself: no pipe, no async state machine, no delegate");

        await pair.A.Output.WriteAsync(new byte[] { 1 }, ct);
        ReadResult result = await read;
        Assert.That(result.Buffer.Length, Is.EqualTo(1));
        pair.B.Input.AdvanceTo(result.Buffer.End);
    }
}
