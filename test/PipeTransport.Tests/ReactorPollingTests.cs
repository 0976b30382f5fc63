using System.Buffers;
using System.IO.Pipelines;
using NUnit.Framework;
using static PipeTransport.Tests.FdTestHelpers;

namespace PipeTransport.Tests;

/// <summary>
/// <see cref="ReactorPolling"/>: what Auto picks, and the hand-off to the thread pool under the cases
/// where one poller at a time matters (disposal from inside a dispatch, a blocked continuation,
/// disposal while the pool polls). The behaviour suite runs over hand-off reactors as well.
/// </summary>
[NonParallelizable] // counts /proc/self/fd
public sealed class ReactorPollingTests
{
    [Test]
    public void AutoHandsOffOnlyWhenTheProcessHasOneCpu()
    {
        using var auto = new ReactorGroup(1, true, ReactorPolling.Auto);
        using var implicitAuto = new ReactorGroup(1);
        ReactorPolling expected = Environment.ProcessorCount == 1 ? ReactorPolling.HandOffToThreadPool : ReactorPolling.DedicatedThread;
        Assert.That(auto.Polling, Is.EqualTo(expected));
        Assert.That(implicitAuto.Polling, Is.EqualTo(expected));
        Assert.That(ReactorGroup.Default.Polling, Is.EqualTo(expected));
    }

    [TestCase(ReactorPolling.DedicatedThread), TestCase(ReactorPolling.HandOffToThreadPool)]
    public void AnExplicitChoiceIsKept(ReactorPolling polling)
    {
        using var group = new ReactorGroup(1, true, polling);
        Assert.That(group.Polling, Is.EqualTo(polling));
    }

    /// <summary><see cref="ReactorGroup.Mode"/> shows what the group decided, and on how many CPUs.</summary>
    [TestCase(ReactorPolling.Auto, true), TestCase(ReactorPolling.DedicatedThread, false), TestCase(ReactorPolling.HandOffToThreadPool, true)]
    [TestCase(ReactorPolling.HandOffToThreadPool, false)]
    [CancelAfter(5000)]
    public void ModeShowsTheDecisions(ReactorPolling polling, bool yieldBeforeWaiting)
    {
        using var group = new ReactorGroup(1, yieldBeforeWaiting, polling);
        int cpus = Environment.ProcessorCount;
        ReactorPolling expected = polling != ReactorPolling.Auto ? polling
            : cpus == 1 ? ReactorPolling.HandOffToThreadPool : ReactorPolling.DedicatedThread;

        ReactorMode mode = group.Mode;

        Assert.Multiple(() =>
        {
            Assert.That(mode.Polling, Is.EqualTo(expected).And.EqualTo(group.Polling));
            Assert.That(mode.HandsOffToThreadPool, Is.EqualTo(expected == ReactorPolling.HandOffToThreadPool));
            Assert.That(mode.YieldsBeforeWaiting, Is.EqualTo(yieldBeforeWaiting).And.EqualTo(group.YieldsBeforeWaiting));
            Assert.That(mode.ProcessorCount, Is.EqualTo(cpus));
            Assert.That(mode.SuspendsHandOffWhenSlow, Is.EqualTo(mode.HandsOffToThreadPool && cpus > 1));
            Assert.That(mode.ToString(), Does.StartWith(expected.ToString()).And.Contain($"{cpus} CPU"));
        });
    }

    [Test, CancelAfter(5000)]
    public void TheDefaultGroupShowsItsMode()
    {
        ReactorMode mode = ReactorGroup.Default.Mode;
        Assert.That(mode.Polling, Is.Not.EqualTo(ReactorPolling.Auto));
        Assert.That(mode.YieldsBeforeWaiting, Is.True);
        Assert.That(mode.ProcessorCount, Is.EqualTo(Environment.ProcessorCount));
    }

    [Test]
    public void AnUndefinedValueIsRefused()
    {
        Assert.That(() => new ReactorGroup(1, true, (ReactorPolling)42), Throws.InstanceOf<ArgumentOutOfRangeException>());
    }

    /// <summary>
    /// Request/response on one hand-off reactor: every exchange makes the pool poll, find the reply
    /// ready, and at the end of each burst hand the polling back; then a half-close.
    /// </summary>
    [TestCase(true), TestCase(false)]
    [CancelAfter(20_000)]
    public async Task ExchangesAndHalfCloseOnOneHandOffReactor(bool inlineApplication, CancellationToken ct)
    {
        using var group = new ReactorGroup(1, true, ReactorPolling.HandOffToThreadPool);
        var options = new FdConnectionOptions
        {
            ReactorGroup = group,
            ApplicationScheduler = inlineApplication ? PipeScheduler.Inline : PipeScheduler.ThreadPool,
        };
        (FdConnection a, FdConnection b) = FdConnection.CreatePair(options);
        await using (a)
        await using (b)
        {
            Task echo = Task.Run(async () =>
            {
                while (true)
                {
                    ReadResult request = await b.Input.ReadAsync(ct);
                    foreach (ReadOnlyMemory<byte> segment in request.Buffer)
                    {
                        b.Output.Write(segment.Span);
                    }

                    b.Input.AdvanceTo(request.Buffer.End);
                    if (request.IsCompleted)
                    {
                        await b.Output.CompleteAsync();
                        return;
                    }

                    await b.Output.FlushAsync(ct);
                }
            }, ct);

            byte[] message = new byte[64];
            for (int i = 0; i < 5_000; i++)
            {
                BitConverter.TryWriteBytes(message, i);
                await a.Output.WriteAsync(message, ct);
                ReadResult reply = await a.Input.ReadAtLeastAsync(message.Length, ct);
                Assert.That(BitConverter.ToInt32(reply.Buffer.Slice(0, 4).ToArray()), Is.EqualTo(i));
                a.Input.AdvanceTo(reply.Buffer.GetPosition(message.Length));
            }

            await a.Output.CompleteAsync();
            await echo;
            ReadResult end = await a.Input.ReadAsync(ct);
            Assert.That(end.IsCompleted && end.Buffer.IsEmpty, Is.True, "the echo's half-close reaches A as EOF");
            a.Input.AdvanceTo(end.Buffer.End);
        }
    }

    /// <summary>
    /// A continuation that runs inside the dispatch (inline application scheduling) disposes the group:
    /// the reactor must not wait for itself, and its thread and fds go away afterwards.
    /// </summary>
    [Test, CancelAfter(20_000)]
    public async Task DisposingTheGroupFromInsideItsOwnDispatchDoesNotDeadlock(CancellationToken ct)
    {
        int fdsBefore = OpenFdCount();
        var group = new ReactorGroup(1, true, ReactorPolling.HandOffToThreadPool);
        var options = new FdConnectionOptions { ReactorGroup = group, ApplicationScheduler = PipeScheduler.Inline };
        (FdConnection a, FdConnection b) = FdConnection.CreatePair(options);
        var disposedInside = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        Task reader = ReadThenDisposeAsync();

        async Task ReadThenDisposeAsync()
        {
            ReadResult result = await b.Input.ReadAsync(ct);
            b.Input.AdvanceTo(result.Buffer.End);
            // Inline scheduling: this runs in the reactor's dispatch (its thread or the pool's turn).
            group.Dispose();
            disposedInside.SetResult(true);
        }

        await a.Output.WriteAsync(new byte[] { 1, 2, 3 }, ct);
        Assert.That(await disposedInside.Task.WaitAsync(ct), Is.True);
        await reader;
        await a.DisposeAsync();
        await b.DisposeAsync();
        // From outside now (a fresh pool work item: the code after an await may itself run inside a
        // reactor's dispatch): joins the reactor thread, which closes its epoll fd and eventfd.
        await Task.Run(group.Dispose, ct);
        Assert.That(OpenFdCount(), Is.EqualTo(fdsBefore), "the pair's fds and the reactor's epoll fd and eventfd are closed");
    }

    /// <summary>
    /// One connection's continuation blocks a pool thread; another connection on the same hand-off
    /// reactor keeps being served (the pool's turn at polling is a work item any pool thread runs).
    /// </summary>
    [Test, CancelAfter(30_000)]
    public async Task ABlockedContinuationDoesNotStopTheOtherConnections(CancellationToken ct)
    {
        using var group = new ReactorGroup(1, true, ReactorPolling.HandOffToThreadPool);
        var options = new FdConnectionOptions { ReactorGroup = group };
        (FdConnection blockedA, FdConnection blockedB) = FdConnection.CreatePair(options);
        (FdConnection a, FdConnection b) = FdConnection.CreatePair(options);
        using var release = new ManualResetEventSlim();
        var blocking = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using (blockedA)
        await using (blockedB)
        await using (a)
        await using (b)
        {
            Task blocked = Task.Run(async () =>
            {
                ReadResult result = await blockedB.Input.ReadAsync(ct);
                blockedB.Input.AdvanceTo(result.Buffer.End);
                blocking.SetResult();
                release.Wait(ct); // a handler that blocks its pool thread
            }, ct);
            await blockedA.Output.WriteAsync(new byte[] { 1 }, ct);
            await blocking.Task.WaitAsync(ct);

            for (int i = 0; i < 100; i++)
            {
                await a.Output.WriteAsync(new byte[] { (byte)i }, ct);
                ReadResult result = await b.Input.ReadAsync(ct);
                Assert.That(result.Buffer.FirstSpan[0], Is.EqualTo((byte)i));
                b.Input.AdvanceTo(result.Buffer.End);
            }

            release.Set();
            await blocked;
        }
    }

    /// <summary>Connections and the group are disposed while data still flows (the pool may hold the polling): no hang, no fd left.</summary>
    [Test, CancelAfter(30_000)]
    public async Task DisposingWhileTrafficFlowsLeavesNoFd(CancellationToken ct)
    {
        int fdsBefore = OpenFdCount();
        for (int round = 0; round < 20; round++)
        {
            var group = new ReactorGroup(2, true, ReactorPolling.HandOffToThreadPool);
            var options = new FdConnectionOptions { ReactorGroup = group };
            (FdConnection a, FdConnection b) = FdConnection.CreatePair(options);
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
            Task pump = Task.Run(async () =>
            {
                byte[] chunk = new byte[4096];
                try
                {
                    while (!stop.IsCancellationRequested)
                    {
                        FlushResult flush = await a.Output.WriteAsync(chunk, stop.Token);
                        if (flush.IsCompleted)
                        {
                            return;
                        }
                    }
                }
                catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or InvalidOperationException or IOException)
                {
                }
            }, ct);
            ReadResult first = await b.Input.ReadAtLeastAsync(64 * 1024, ct);
            b.Input.AdvanceTo(first.Buffer.End);

            await stop.CancelAsync();
            await a.DisposeAsync();
            await b.DisposeAsync();
            await pump;
            await Task.Run(group.Dispose, ct); // outside any dispatch, so it joins (see above)
        }

        Assert.That(OpenFdCount(), Is.EqualTo(fdsBefore));
    }
}
