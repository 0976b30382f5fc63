using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using Mono.Unix.Native;
using NUnit.Framework;
using PipeTransport.Interop;
using static PipeTransport.Tests.FdTestHelpers;

namespace PipeTransport.Tests;

/// <summary>Bad input and faults: each fails at once with a clear exception, frees what it held, and never hangs.</summary>
[NonParallelizable] // counts /proc/self/fd and, for EACCES, briefly drops the effective uid of the process
public class FaultTests
{
    private const int NotAnFd = 1_000_000; // above any fd limit: fcntl says EBADF

    [Test, CancelAfter(5000)]
    public void OpenFifoAsync_on_a_missing_path_fails_with_ENOENT(CancellationToken ct)
    {
        using var dir = new TempDirectory();
        string missing = dir.File("missing");
        string fifo = dir.File("fifo");
        Fifo.Create(fifo);

        AssertOpenFails(missing, fifo, missing, Errno.ENOENT, ct);
        AssertOpenFails(fifo, missing, missing, Errno.ENOENT, ct);
    }

    [Test, CancelAfter(5000)]
    public void OpenFifoAsync_on_a_regular_file_fails_with_EINVAL_not_a_FIFO(CancellationToken ct)
    {
        using var dir = new TempDirectory();
        string file = dir.File("file");
        File.WriteAllText(file, "not a fifo");
        string fifo = dir.File("fifo");
        Fifo.Create(fifo);

        PipeTransportException e = AssertOpenFails(file, fifo, file, Errno.EINVAL, ct);
        Assert.That(e.Message, Does.Contain("not a FIFO"));
        AssertOpenFails(fifo, file, file, Errno.EINVAL, ct);
    }

    [Test, CancelAfter(5000)]
    public void OpenFifoAsync_on_a_directory_fails_with_EISDIR(CancellationToken ct)
    {
        using var dir = new TempDirectory();
        string fifo = dir.File("fifo");
        Fifo.Create(fifo);

        AssertOpenFails(dir.Path, fifo, dir.Path, Errno.EISDIR, ct);
        AssertOpenFails(fifo, dir.Path, dir.Path, Errno.EISDIR, ct);
    }

    /// <summary>
    /// Root passes every permission check (CAP_DAC_OVERRIDE), so when the tests run as root the
    /// process's effective uid is switched to nobody (65534) for the synchronous part of the open
    /// and back at once: with a non-zero euid the kernel clears the effective capabilities and
    /// applies the file mode; seteuid(0) restores them from the permitted set.
    /// </summary>
    [Test, CancelAfter(5000)]
    public void OpenFifoAsync_without_permission_fails_with_EACCES(CancellationToken ct)
    {
        using var dir = new TempDirectory();
        Assert.That(Syscall.chmod(dir.Path, (FilePermissions)0b111_101_101), Is.Zero); // 0755: nobody may look up the FIFOs
        string locked = dir.File("locked");
        Fifo.Create(locked, UnixFileMode.UserRead | UnixFileMode.UserWrite); // 0600, owned by us
        string open = dir.File("open");
        Fifo.Create(open, (UnixFileMode)0b110_110_110);
        if (Syscall.geteuid() != 0)
        {
            Assert.That(Syscall.chmod(locked, 0), Is.Zero);
        }

        foreach ((string read, string write) in new[] { (locked, open), (open, locked) })
        {
            Task<FdConnection> attempt = AsNobody(() => FdConnection.OpenFifoAsync(read, write, null, ct).AsTask());
            Assert.That(attempt.IsCompleted, Is.True, "the permission failure is reported at once, not after waiting for a peer");
            var e = Assert.ThrowsAsync<PipeTransportException>(async () => await attempt);
            Assert.That(e!.Errno, Is.EqualTo(Errno.EACCES));
            Assert.That(e.Target, Is.EqualTo(locked));
            Assert.That(e.Message, Does.Contain(locked).And.Contain("EACCES"));
        }
    }

    [Test, CancelAfter(10_000)]
    public async Task Cancelling_an_open_that_waits_for_a_reader_frees_everything(CancellationToken ct)
    {
        using var dir = new TempDirectory();
        string a = dir.File("a");
        string b = dir.File("b");
        Fifo.Create(a);
        Fifo.Create(b);
        await CancelPendingOpenAsync(a, b, ct); // warm-up: reactors, timers
        int before = OpenFdCount();

        await CancelPendingOpenAsync(a, b, ct);

        Assert.That(OpenFdCount(), Is.EqualTo(before));
    }

    /// <summary>
    /// Regression: a cancelled open closed its inotify fd under a pending readiness wait, which
    /// faulted that wait's task with ObjectDisposedException and left it unobserved (reported on
    /// TaskScheduler.UnobservedTaskException when collected).
    /// </summary>
    [Test, CancelAfter(10_000)]
    public async Task Cancelling_a_pending_open_leaves_no_unobserved_task_exception(CancellationToken ct)
    {
        using var dir = new TempDirectory();
        string a = dir.File("a");
        string b = dir.File("b");
        Fifo.Create(a);
        Fifo.Create(b);
        int unobserved = 0;
        void OnUnobserved(object? sender, UnobservedTaskExceptionEventArgs e)
        {
            if (e.Exception.InnerExceptions.Any(x => x is ObjectDisposedException { ObjectName: "fd" }))
            {
                Interlocked.Increment(ref unobserved);
            }
        }

        TaskScheduler.UnobservedTaskException += OnUnobserved;
        try
        {
            for (int i = 0; i < 5; i++)
            {
                await CancelPendingOpenAsync(a, b, ct);
            }

            GC.Collect();
            GC.WaitForPendingFinalizers();
            GC.Collect();
        }
        finally
        {
            TaskScheduler.UnobservedTaskException -= OnUnobserved;
        }

        Assert.That(unobserved, Is.Zero);
    }

    [Test, CancelAfter(10_000)]
    public async Task An_open_without_a_writer_yet_returns_and_Input_sees_no_false_EOF(CancellationToken ct)
    {
        using var dir = new TempDirectory();
        string a = dir.File("a");
        string b = dir.File("b");
        Fifo.Create(a);
        Fifo.Create(b);
        using var readerOfB = new SafeFdHandle(Sys.Open(b, Libc.O_RDONLY | Libc.O_NONBLOCK));
        Assert.That(readerOfB.IsInvalid, Is.False);

        await using FdConnection connection = await FdConnection.OpenFifoAsync(a, b, null, ct);

        // Nobody has opened a for writing: read(2) would say 0 now, and that must not end Input.
        ValueTask<ReadResult> read = connection.Input.ReadAsync(ct);
        Assert.That(read.IsCompleted, Is.False, "Input ended before the first writer came");
        using (var writer = new SafeFdHandle(Sys.Open(a, Libc.O_WRONLY | Libc.O_NONBLOCK)))
        {
            Assert.That(writer.IsInvalid, Is.False);
            Assert.That(WriteOnce(writer.Fd, "x"u8.ToArray()), Is.EqualTo((nint)1));
        }

        ReadResult result = await read;
        Assert.That(result.Buffer.ToArray(), Is.EqualTo("x"u8.ToArray()));
        connection.Input.AdvanceTo(result.Buffer.End);
        Assert.That(await ReadToEndAsync(connection.Input, ct), Is.Empty, "the writer left: EOF");
    }

    /// <summary>
    /// Regression: a peer that opens its write end first and then waits for our message before it
    /// writes (here a shell). Our own open of the read FIFO wakes its blocked open, and inotify merged
    /// its IN_OPEN with ours, so an open that waited for a writer waited for ever.
    /// </summary>
    [Test, CancelAfter(30_000)]
    public async Task A_peer_that_writes_only_after_our_request_does_not_deadlock_the_open(CancellationToken ct)
    {
        using var dir = new TempDirectory();
        string fromPeer = dir.File("from-peer");
        string toPeer = dir.File("to-peer");
        Fifo.Create(fromPeer);
        Fifo.Create(toPeer);
        for (int i = 0; i < 25; i++)
        {
            using Process peer = StartShell($"exec 3>'{fromPeer}'; read line < '{toPeer}'; echo \"got $line\" >&3");
            await using (FdConnection connection = await FdConnection.OpenFifoAsync(fromPeer, toPeer, null, ct))
            {
                await connection.Output.WriteAsync("hi\n"u8.ToArray(), ct);
                await connection.Output.CompleteAsync();
                Assert.That(await ReadToEndAsync(connection.Input, ct), Is.EqualTo("got hi\n"u8.ToArray()));
            }

            await peer.WaitForExitAsync(ct);
        }
    }

    [Test, CancelAfter(10_000)]
    public async Task Writing_after_the_pipe_reader_closed_surfaces_EPIPE_through_Output_and_Input_keeps_working(CancellationToken ct)
    {
        (SafeFdHandle inRead, SafeFdHandle inWrite) = Pipe();
        (SafeFdHandle outRead, SafeFdHandle outWrite) = Pipe();
        using (inWrite)
        {
            await using FdConnection connection = FdConnection.FromFds(inRead, outWrite);
            outRead.Dispose(); // the peer closes its read end

            var e = Assert.ThrowsAsync<FdConnectionResetException>(() => WriteUntilFailureAsync(connection.Output, ct));
            Assert.That(e!.Errno, Is.EqualTo(Errno.EPIPE));
            Assert.That(e.Operation, Is.EqualTo("write"));

            // The other direction is independent of the failed one.
            Assert.That(WriteOnce(inWrite.Fd, "ok"u8.ToArray()), Is.EqualTo((nint)2));
            Assert.That(await ReadExactlyAsync(connection.Input, 2, ct), Is.EqualTo("ok"u8.ToArray()));
            inWrite.Dispose();
            Assert.That(await ReadToEndAsync(connection.Input, ct), Is.Empty);
        }
    }

    [Test, CancelAfter(10_000)]
    public async Task Writing_after_the_FIFO_reader_closed_surfaces_a_reset_through_Output(CancellationToken ct)
    {
        using var dir = new TempDirectory();
        string a = dir.File("a");
        string b = dir.File("b");
        Fifo.Create(a);
        Fifo.Create(b);
        Task<FdConnection> first = FdConnection.OpenFifoAsync(a, b, null, ct).AsTask();
        await using FdConnection second = await FdConnection.OpenFifoAsync(b, a, null, ct);
        FdConnection firstConnection = await first;
        await second.Output.WriteAsync("x"u8.ToArray(), ct);
        Assert.That(await ReadExactlyAsync(firstConnection.Input, 1, ct), Is.EqualTo("x"u8.ToArray()));

        await firstConnection.DisposeAsync(); // closes its read end of a: second's writes now hit EPIPE

        var e = Assert.ThrowsAsync<FdConnectionResetException>(() => WriteUntilFailureAsync(second.Output, ct));
        Assert.That(e!.Errno, Is.EqualTo(Errno.EPIPE));
        Assert.That(e.Target, Is.EqualTo(a));
    }

    [Test, CancelAfter(10_000)]
    public async Task Writing_after_the_socket_peer_closed_surfaces_a_reset_through_Output(CancellationToken ct)
    {
        (FdConnection a, FdConnection b) = FdConnection.CreatePair();
        await using (a)
        {
            await b.DisposeAsync();

            var e = Assert.ThrowsAsync<FdConnectionResetException>(() => WriteUntilFailureAsync(a.Output, ct));
            Assert.That(e!.Errno, Is.AnyOf(Errno.EPIPE, Errno.ECONNRESET));
        }
    }

    [Test, CancelAfter(10_000)]
    public void Failed_opens_leave_no_fd_behind(CancellationToken ct)
    {
        using var dir = new TempDirectory();
        Assert.That(Syscall.chmod(dir.Path, (FilePermissions)0b111_101_101), Is.Zero);
        string fifo = dir.File("fifo");
        Fifo.Create(fifo, (UnixFileMode)0b110_110_110);
        string locked = dir.File("locked");
        Fifo.Create(locked);
        if (Syscall.geteuid() != 0)
        {
            Assert.That(Syscall.chmod(locked, 0), Is.Zero);
        }

        string file = dir.File("file");
        File.WriteAllText(file, "x");
        string missing = dir.File("missing");
        _ = ReactorGroup.Default.Count;
        int before = OpenFdCount();

        for (int i = 0; i < 100; i++)
        {
            Assert.That(async () => await FdConnection.OpenFifoAsync(fifo, missing, null, ct), Throws.InstanceOf<PipeTransportException>());
            Assert.That(async () => await FdConnection.OpenFifoAsync(file, fifo, null, ct), Throws.InstanceOf<PipeTransportException>());
            Assert.That(async () => await FdConnection.OpenFifoAsync(fifo, dir.Path, null, ct), Throws.InstanceOf<PipeTransportException>());

            // The read end opens, then the write end fails: the read end must be closed again.
            Task<FdConnection> denied = AsNobody(() => FdConnection.OpenFifoAsync(fifo, locked, null, ct).AsTask());
            Assert.That(async () => await denied, Throws.InstanceOf<PipeTransportException>().With.Property(nameof(PipeTransportException.Errno)).EqualTo(Errno.EACCES));
        }

        Assert.That(OpenFdCount(), Is.EqualTo(before));
    }

    [Test, CancelAfter(5000)]
    public void An_already_cancelled_open_throws_without_opening_anything(CancellationToken ct)
    {
        using var dir = new TempDirectory();
        string a = dir.File("a");
        Fifo.Create(a);
        _ = ReactorGroup.Default.Count;
        int before = OpenFdCount();

        Assert.That(async () => await FdConnection.OpenFifoAsync(a, a, null, new CancellationToken(true)), Throws.InstanceOf<OperationCanceledException>());

        Assert.That(OpenFdCount(), Is.EqualTo(before));
    }

    [Test, CancelAfter(5000)]
    public async Task One_FIFO_for_both_directions_reads_back_what_it_wrote_and_ends_with_EOF(CancellationToken ct)
    {
        using var dir = new TempDirectory();
        string loop = dir.File("loop");
        Fifo.Create(loop);

        await using FdConnection connection = await FdConnection.OpenFifoAsync(loop, loop, null, ct);
        await connection.Output.WriteAsync("round trip"u8.ToArray(), ct);
        Assert.That(await ReadExactlyAsync(connection.Input, 10, ct), Is.EqualTo("round trip"u8.ToArray()));

        await connection.Output.CompleteAsync(); // the only writer closes: the reader sees EOF
        Assert.That(await ReadToEndAsync(connection.Input, ct), Is.Empty);
    }

    [Test, CancelAfter(5000)]
    public async Task Dispose_and_Abort_in_any_order_and_at_once_complete_without_error(CancellationToken ct)
    {
        for (int order = 0; order < 3; order++)
        {
            (FdConnection a, FdConnection b) = FdConnection.CreatePair();
            CancellationToken closed = a.Closed;
            Assert.That(closed.IsCancellationRequested, Is.False);
            ValueTask<ReadResult> read = a.Input.ReadAsync(ct);
            switch (order)
            {
                case 0:
                    await Task.WhenAll(a.DisposeAsync().AsTask(), a.DisposeAsync().AsTask(), Task.Run(() => a.DisposeAsync().AsTask(), ct));
                    break;
                case 1:
                    a.Abort();
                    await a.DisposeAsync();
                    a.Abort();
                    break;
                default:
                    await a.DisposeAsync();
                    a.Abort();
                    await a.DisposeAsync();
                    break;
            }

            try
            {
                ReadResult result = await read;
                Assert.That(result.IsCompleted || result.IsCanceled, Is.True);
            }
            catch (PipeTransportException e) when (order == 1)
            {
                Assert.That(e.Errno, Is.EqualTo(Errno.ECONNABORTED), "Abort completes Input with its reason");
            }

            // Closed fires (its callbacks run on the thread pool).
            var fired = new TaskCompletionSource();
            using (closed.Register(() => fired.TrySetResult()))
            {
                await fired.Task.WaitAsync(ct);
            }

            await b.DisposeAsync();
        }
    }

    /// <summary>
    /// Regression: two connections opening the two ends of a FIFO pair at the same time. Each waits
    /// for the other's open of its read FIFO (an inotify IN_OPEN); inotify merges an event into the
    /// previous unread one when they are identical, so a peer's open landing right after our own was
    /// counted as ours and both sides waited for each other forever.
    /// </summary>
    [Test, CancelAfter(20_000)]
    public async Task Opening_both_ends_of_a_FIFO_pair_at_once_never_deadlocks(CancellationToken ct)
    {
        using var dir = new TempDirectory();
        string a = dir.File("a");
        string b = dir.File("b");
        Fifo.Create(a);
        Fifo.Create(b);
        for (int i = 0; i < 200; i++)
        {
            Task<FdConnection> first = FdConnection.OpenFifoAsync(a, b, null, ct).AsTask();
            Task<FdConnection> second = FdConnection.OpenFifoAsync(b, a, null, ct).AsTask();
            await using FdConnection one = await first;
            await using FdConnection two = await second;
        }
    }

    [Test, CancelAfter(5000)]
    public void A_closed_handle_is_refused_with_ObjectDisposedException(CancellationToken ct)
    {
        (SafeFdHandle r, SafeFdHandle w) = Pipe();
        r.Dispose();
        using (w)
        {
            Assert.Throws<ObjectDisposedException>(() => FdConnection.FromFd(r));
            Assert.Throws<ObjectDisposedException>(() => RawFd.Create(r));
            int before = OpenFdCount();
            var table = FdTable();
            Assert.Throws<ObjectDisposedException>(() => FdConnection.FromFds(r, w));
            Assert.Throws<ObjectDisposedException>(() => FdConnection.FromFds(w, r));
            w.Dispose(); // whether or not the failed adoption closed it, nothing is left open
            Assert.That(OpenFdCount(), Is.EqualTo(before - 1), FdChanges(table));
        }
    }

    [Test, CancelAfter(5000)]
    public void A_number_that_is_not_an_open_fd_is_refused_with_ArgumentException(CancellationToken ct)
    {
        using var notAnFd = new SafeFdHandle(NotAnFd, ownsHandle: false);
        using var invalid = new SafeFdHandle(-1, ownsHandle: false);

        var e = Assert.Throws<ArgumentException>(() => FdConnection.FromFd(notAnFd));
        Assert.That(e!.Message, Does.Contain($"fd {NotAnFd}").And.Contain("EBADF"));
        Assert.Throws<ArgumentException>(() => FdConnection.FromFd(invalid));
        Assert.Throws<ArgumentException>(() => RawFd.Create(notAnFd));
        Assert.Throws<ArgumentException>(() => RawFd.Create(invalid));

        (SafeFdHandle r, SafeFdHandle w) = Pipe();
        int before = OpenFdCount();
        Assert.Throws<ArgumentException>(() => FdConnection.FromFds(r, notAnFd));
        Assert.Throws<ArgumentException>(() => FdConnection.FromFds(notAnFd, w));
        r.Dispose();
        w.Dispose();
        Assert.That(OpenFdCount(), Is.EqualTo(before - 2));
    }

    [Test, CancelAfter(5000)]
    public void A_directory_fd_is_refused_with_ArgumentException(CancellationToken ct)
    {
        using var dir = new TempDirectory();
        int fd = Sys.Open(dir.Path, Libc.O_RDONLY);
        Assert.That(fd, Is.GreaterThanOrEqualTo(0));
        using var handle = new SafeFdHandle(fd);

        var e = Assert.Throws<ArgumentException>(() => FdConnection.FromFd(handle));
        Assert.That(e!.Message, Does.Contain("EISDIR"));
        Assert.Throws<ArgumentException>(() => RawFd.Create(handle));
    }

    [Test, CancelAfter(5000)]
    public async Task Disposing_completes_a_pending_Input_read(CancellationToken ct)
    {
        (FdConnection a, FdConnection b) = FdConnection.CreatePair();
        await using (b)
        {
            ValueTask<ReadResult> read = a.Input.ReadAsync(ct);
            Assert.That(read.IsCompleted, Is.False);

            await a.DisposeAsync();

            ReadResult result = await read;
            Assert.That(result.IsCompleted || result.IsCanceled, Is.True);
        }
    }

    [Test, CancelAfter(5000)]
    public async Task Disposing_completes_a_pending_Input_read_on_pipes(CancellationToken ct)
    {
        (SafeFdHandle inRead, SafeFdHandle inWrite) = Pipe();
        (SafeFdHandle outRead, SafeFdHandle outWrite) = Pipe();
        using (inWrite)
        using (outRead)
        {
            FdConnection connection = FdConnection.FromFds(inRead, outWrite);
            ValueTask<ReadResult> read = connection.Input.ReadAsync(ct);
            Assert.That(read.IsCompleted, Is.False);

            await connection.DisposeAsync();

            ReadResult result = await read;
            Assert.That(result.IsCompleted || result.IsCanceled, Is.True);
        }
    }

    [Test, CancelAfter(10_000)]
    public async Task Disposing_completes_a_flush_held_by_backpressure(CancellationToken ct)
    {
        var options = new FdConnectionOptions { OutputPauseThreshold = 16 * 1024, OutputResumeThreshold = 8 * 1024 };
        (FdConnection a, FdConnection b) = FdConnection.CreatePair(options);
        await using (b) // b never reads: a's socket buffer fills, then its Output pipe
        {
            ValueTask<FlushResult> flush = await WriteUntilFlushBlocksAsync(a, ct);

            await a.DisposeAsync();

            FlushResult result = await flush;
            Assert.That(result.IsCompleted || result.IsCanceled, Is.True);
        }
    }

    [Test, CancelAfter(10_000)]
    public async Task Disposing_completes_a_flush_held_by_a_full_pipe(CancellationToken ct)
    {
        var options = new FdConnectionOptions { OutputPauseThreshold = 16 * 1024, OutputResumeThreshold = 8 * 1024 };
        (SafeFdHandle inRead, SafeFdHandle inWrite) = Pipe();
        (SafeFdHandle outRead, SafeFdHandle outWrite) = Pipe();
        using (inWrite)
        using (outRead)
        {
            FdConnection connection = FdConnection.FromFds(inRead, outWrite, options);
            ValueTask<FlushResult> flush = await WriteUntilFlushBlocksAsync(connection, ct);

            await connection.DisposeAsync();

            FlushResult result = await flush;
            Assert.That(result.IsCompleted || result.IsCanceled, Is.True);
        }
    }

    [Test, CancelAfter(5000)]
    public async Task Disposing_the_connection_wakes_a_pending_InputFd_wait(CancellationToken ct)
    {
        (FdConnection a, FdConnection b) = FdConnection.CreatePair();
        await using (b)
        {
            ValueTask wait = a.InputFd.ReadAsync(fd => ReadOnce(fd, new byte[1]) > 0, ct);
            Assert.That(wait.IsCompleted, Is.False);

            await a.DisposeAsync();

            Assert.That(async () => await wait, Throws.InstanceOf<ObjectDisposedException>());
            Assert.Throws<ObjectDisposedException>(() => a.InputFd.Control(_ => { }));
        }
    }

    [Test, CancelAfter(5000)]
    public async Task Disposing_a_pipe_connection_wakes_pending_InputFd_and_OutputFd_waits(CancellationToken ct)
    {
        (SafeFdHandle inRead, SafeFdHandle inWrite) = Pipe();
        (SafeFdHandle outRead, SafeFdHandle outWrite) = Pipe();
        using (inWrite)
        using (outRead)
        {
            FdConnection connection = FdConnection.FromFds(inRead, outWrite);
            FillPipe(FdOf(connection.OutputFd));
            ValueTask readWait = connection.InputFd.ReadAsync(fd => ReadOnce(fd, new byte[1]) > 0, ct);
            ValueTask writeWait = connection.OutputFd.WriteAsync(fd => WriteOnce(fd, new byte[1]) > 0, ct);
            Assert.That(readWait.IsCompleted, Is.False);
            Assert.That(writeWait.IsCompleted, Is.False);

            await connection.DisposeAsync();

            Assert.That(async () => await readWait, Throws.InstanceOf<ObjectDisposedException>());
            Assert.That(async () => await writeWait, Throws.InstanceOf<ObjectDisposedException>());
        }
    }

    /// <summary>
    /// A peer process killed with SIGKILL mid-transfer, over every kind of fd a process holds: it was
    /// writing to us as fast as it could and had stopped reading, so our flush waits on backpressure.
    /// Input ends (EOF, or a reset) and the pending flush ends (a reset, or a completed result) within
    /// <see cref="PeerDeathBound"/>: nothing waits for a peer that is gone.
    /// </summary>
    [TestCase(FdKinds.FifoPair), TestCase(FdKinds.AnonymousPipes), TestCase(FdKinds.Unix), TestCase(FdKinds.Tcp), CancelAfter(30_000)]
    public async Task A_peer_killed_with_SIGKILL_mid_transfer_ends_Input_and_fails_the_pending_flush(string kind, CancellationToken ct)
    {
        using var dir = new TempDirectory();
        var options = new FdConnectionOptions { OutputPauseThreshold = 64 * 1024, OutputResumeThreshold = 32 * 1024 };
        (Process child, FdConnection connection, FdListener? listener) = await StartWritingPeerAsync(kind, dir, options, ct);
        using (child)
        await using (listener)
        await using (connection)
        {
            try
            {
                // Mid-transfer: the peer's bytes flow in...
                long received = 0;
                while (received < 1 << 20)
                {
                    ReadResult read = await connection.Input.ReadAsync(ct);
                    Assert.That(read.IsCompleted, Is.False, "EOF before the peer was killed");
                    received += read.Buffer.Length;
                    connection.Input.AdvanceTo(read.Buffer.End);
                }

                // ...and ours wait: the peer does not read, the kernel pushed back, the flush is pending.
                Task<FlushResult> flush = (await WriteUntilFlushBlocksAsync(connection, ct)).AsTask();
                // On the pool: the peer may keep Input full, and a drain that never has to wait would
                // finish its first call only at the end of the stream.
                Task<long> input = Task.Run(() => CountToEndAsync(connection.Input, ct), ct);
                var clock = new Stopwatch();
                Task<TimeSpan> flushEnded = TimeAsync(flush, clock);
                Task<TimeSpan> inputEnded = TimeAsync(input, clock);

                clock.Start();
                child.Kill();

                TimeSpan flushTime = await EndedAsync(flushEnded, "the pending flush");
                TimeSpan inputTime = await EndedAsync(inputEnded, "Input");
                TestContext.Out.WriteLine($"{kind}: after SIGKILL the pending flush ended in {flushTime.TotalMilliseconds:F1} ms ({Outcome(flush)}), Input in {inputTime.TotalMilliseconds:F1} ms ({Outcome(input)})");
                Assert.That(flush.IsCanceled || input.IsCanceled, Is.False);
                Assert.That(flush.Exception?.InnerException, Is.Null.Or.InstanceOf<FdConnectionResetException>(), "the pending flush: a reset or a completed result");
                Assert.That(input.Exception?.InnerException, Is.Null.Or.InstanceOf<FdConnectionResetException>(), "Input: EOF or a reset");
                Assert.That(flushTime, Is.LessThan(PeerDeathBound), "the pending flush");
                Assert.That(inputTime, Is.LessThan(PeerDeathBound), "Input");
            }
            finally
            {
                if (!child.HasExited)
                {
                    child.Kill();
                }
            }
        }

        async Task<TimeSpan> EndedAsync(Task<TimeSpan> ended, string what)
        {
            // Waits past the bound so that a slow end is measured, and a missing one named.
            if (await Task.WhenAny(ended, Task.Delay(5 * PeerDeathBound, ct)) != ended)
            {
                Assert.Fail($"{what} still pending {(5 * PeerDeathBound).TotalSeconds} s after SIGKILL ({kind}): {connection.DebugState}");
            }

            return await ended;
        }

        static string Outcome(Task task) => task.IsCompletedSuccessfully ? "completed" : task.Exception?.InnerException?.GetType().Name ?? "cancelled";
    }

    /// <summary>How long the end of a killed peer may take to reach a pending flush and Input (it is milliseconds; this leaves room for a busy machine).</summary>
    private static readonly TimeSpan PeerDeathBound = TimeSpan.FromSeconds(1);

    /// <summary>Reads <paramref name="reader"/> to its end and returns how many bytes came (kept nowhere).</summary>
    private static async Task<long> CountToEndAsync(PipeReader reader, CancellationToken ct)
    {
        long count = 0;
        while (true)
        {
            ReadResult result = await reader.ReadAsync(ct);
            count += result.Buffer.Length;
            reader.AdvanceTo(result.Buffer.End);
            if (result.IsCompleted)
            {
                return count;
            }
        }
    }

    /// <summary>When <paramref name="task"/> ended (completed or failed), on <paramref name="clock"/>.</summary>
    private static async Task<TimeSpan> TimeAsync(Task task, Stopwatch clock)
    {
        await task.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        return clock.Elapsed;
    }

    /// <summary>
    /// A python3 peer connected to a new connection of <paramref name="kind"/>: it writes to us as fast
    /// as it can and never reads (a FIFO pair; its stdout and stdin; a Unix or TCP socket).
    /// </summary>
    private static async Task<(Process Child, FdConnection Connection, FdListener? Listener)> StartWritingPeerAsync(
        string kind, TempDirectory dir, FdConnectionOptions options, CancellationToken ct)
    {
        const string Peer = """
            import os, socket, sys
            kind, where = sys.argv[1], sys.argv[2:]
            if kind == 'fifo':
                unread = os.open(where[1], os.O_RDONLY)
                fd = os.open(where[0], os.O_WRONLY)
            elif kind == 'pipe':
                fd = 1
            elif kind == 'unix':
                s = socket.socket(socket.AF_UNIX)
                s.connect(where[0])
                fd = s.fileno()
            else:
                s = socket.create_connection(('127.0.0.1', int(where[0])))
                fd = s.fileno()
            chunk = b'x' * 65536
            while True:
                os.write(fd, chunk)
            """;
        Process Start(bool stdio, params string[] where)
        {
            var info = new ProcessStartInfo("python3") { UseShellExecute = false, RedirectStandardInput = stdio, RedirectStandardOutput = stdio };
            info.ArgumentList.Add("-c");
            info.ArgumentList.Add(Peer);
            info.ArgumentList.Add(kind);
            foreach (string w in where)
            {
                info.ArgumentList.Add(w);
            }

            return Process.Start(info) ?? throw new InvalidOperationException("python3 did not start");
        }

        switch (kind)
        {
            case FdKinds.FifoPair:
            {
                string fromChild = dir.File("from-child");
                string toChild = dir.File("to-child");
                Fifo.Create(fromChild);
                Fifo.Create(toChild);
                Process child = Start(false, fromChild, toChild);
                return (child, await FdConnection.OpenFifoAsync(fromChild, toChild, options, ct), null);
            }

            case FdKinds.AnonymousPipes:
            {
                Process child = Start(true);
                var stdout = (System.IO.Pipes.PipeStream)child.StandardOutput.BaseStream;
                var stdin = (System.IO.Pipes.PipeStream)child.StandardInput.BaseStream;
                return (child, FdConnection.FromFds(stdout.SafePipeHandle, stdin.SafePipeHandle, options), null);
            }

            default:
            {
                EndPoint endPoint = kind == FdKinds.Unix ? new UnixDomainSocketEndPoint(dir.File("s")) : new IPEndPoint(IPAddress.Loopback, 0);
                FdListener listener = FdListener.Bind(endPoint, new FdListenerOptions { ConnectionOptions = options });
                Process child = Start(false, kind == FdKinds.Unix ? dir.File("s") : ((IPEndPoint)listener.LocalEndPoint).Port.ToString(CultureInfo.InvariantCulture));
                return (child, (await listener.AcceptAsync(ct))!, listener);
            }
        }
    }

    private static PipeTransportException AssertOpenFails(string readPath, string writePath, string culprit, Errno errno, CancellationToken ct)
    {
        // The token would turn a wait for a peer into OperationCanceledException: the failure must come first.
        var e = Assert.ThrowsAsync<PipeTransportException>(async () => await FdConnection.OpenFifoAsync(readPath, writePath, null, ct));
        Assert.That(e!.Errno, Is.EqualTo(errno));
        Assert.That(e.Target, Is.EqualTo(culprit));
        Assert.That(e.Message, Does.Contain(culprit).And.Contain(errno.ToString()));
        return e;
    }

    private static Task<FdConnection> AsNobody(Func<Task<FdConnection>> open)
    {
        if (Syscall.geteuid() != 0)
        {
            return open();
        }

        Assert.That(Syscall.seteuid(65534), Is.Zero, "seteuid(nobody)");
        try
        {
            return open();
        }
        finally
        {
            if (Syscall.seteuid(0) != 0)
            {
                Environment.FailFast("could not restore euid 0 after the EACCES test");
            }
        }
    }

    /// <summary>Starts an open of (<paramref name="readPath"/>, <paramref name="writePath"/>) that cannot finish, cancels it, and checks it ends cancelled.</summary>
    private static async Task CancelPendingOpenAsync(string readPath, string writePath, CancellationToken ct)
    {
        int before = OpenFdCount();
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        Task<FdConnection> open = FdConnection.OpenFifoAsync(readPath, writePath, null, cts.Token).AsTask();
        Assert.That(open.IsCompleted, Is.False);
        Assert.That(OpenFdCount(), Is.GreaterThan(before), "the pending open holds fds (inotify, the read end)");

        cts.Cancel();

        Assert.That(async () => await open, Throws.InstanceOf<OperationCanceledException>());
        ct.ThrowIfCancellationRequested();
    }

    private static async Task WriteUntilFailureAsync(PipeWriter output, CancellationToken ct)
    {
        var chunk = new byte[16 * 1024];
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            FlushResult result = await output.WriteAsync(chunk, ct);
            if (result.IsCompleted)
            {
                Assert.Fail("Output completed without reporting why the send loop ended");
            }
        }
    }

    /// <summary>Writes chunks until a flush stays pending (backpressure), and returns that flush.</summary>
    private static async Task<ValueTask<FlushResult>> WriteUntilFlushBlocksAsync(FdConnection connection, CancellationToken ct)
    {
        var chunk = new byte[16 * 1024];
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            ValueTask<FlushResult> flush = connection.Output.WriteAsync(chunk, ct);

            // Pending may only mean the send is on its way (on a pool thread): backpressure is the
            // kernel pushing back while the flush waits.
            while (!flush.IsCompleted && !connection.SendBlocked)
            {
                await Task.Delay(1, ct);
            }

            if (!flush.IsCompleted)
            {
                return flush;
            }

            FlushResult result = await flush;
            Assert.That(result.IsCompleted || result.IsCanceled, Is.False);
        }
    }
}
