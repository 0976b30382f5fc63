using System.Buffers;
using System.IO.Pipelines;
using System.Security.Cryptography;
using Mono.Unix.Native;
using Moq;
using NUnit.Framework;
using PipeTransport.Interop;
using static PipeTransport.Tests.FdTestHelpers;

namespace PipeTransport.Tests;

/// <summary>
/// What a real fd cannot produce on demand, through the <see cref="ISyscalls"/> seam: a Moq mock that
/// forwards to <see cref="LinuxSyscalls.Instance"/> and, on some calls, returns <c>-EINTR</c>, an
/// error, or writes less than it was given.
/// </summary>
public class SyscallSeamTests
{
    private const int Transfer = 2 * 1024 * 1024;

    public static IEnumerable<TestCaseData> Kinds()
    {
        yield return new TestCaseData("socketpair");
        yield return new TestCaseData("pipes");
    }

    [TestCaseSource(nameof(Kinds)), CancelAfter(30_000)]
    public async Task EINTR_on_every_other_call_is_retried_and_the_data_arrives_intact(string kind, CancellationToken ct)
    {
        int calls = 0;
        int interrupted = 0;
        bool Interrupt()
        {
            if (Interlocked.Increment(ref calls) % 2 == 0)
            {
                Interlocked.Increment(ref interrupted);
                return true;
            }

            return false;
        }

        var mock = new Mock<ISyscalls>(MockBehavior.Strict);
        mock.Setup(s => s.Read(It.IsAny<int>(), It.IsAny<Memory<byte>>()))
            .Returns((int fd, Memory<byte> buffer) => Interrupt() ? -Libc.EINTR : LinuxSyscalls.Instance.Read(fd, buffer));
        mock.Setup(s => s.Write(It.IsAny<int>(), It.IsAny<ReadOnlySequence<byte>>()))
            .Returns((int fd, ReadOnlySequence<byte> buffer) => Interrupt() ? -Libc.EINTR : LinuxSyscalls.Instance.Write(fd, buffer));
        mock.Setup(s => s.BytesAvailable(It.IsAny<int>()))
            .Returns((int fd) => Interrupt() ? -Libc.EINTR : LinuxSyscalls.Instance.BytesAvailable(fd));
        mock.Setup(s => s.ShortReadMeansDrained).Returns(true); // EINTR aside, reads are the kernel's
        var options = new FdConnectionOptions { Syscalls = mock.Object };

        (FdConnection a, FdConnection b) = Open(kind, options);
        await using (a)
        await using (b)
        {
            // Both directions at once, each with half-close at the end.
            byte[] toB = RandomBytes(Transfer, 1);
            byte[] toA = RandomBytes(Transfer, 2);
            Task<byte[]> receivedByB = ReadToEndAsync(b.Input, ct);
            Task<byte[]> receivedByA = ReadToEndAsync(a.Input, ct);
            await Task.WhenAll(SendAsync(a.Output, toB, 10_000, ct), SendAsync(b.Output, toA, 10_000, ct));

            Assert.That(SHA256.HashData(await receivedByB), Is.EqualTo(SHA256.HashData(toB)));
            Assert.That(SHA256.HashData(await receivedByA), Is.EqualTo(SHA256.HashData(toA)));
        }

        Assert.That(interrupted, Is.GreaterThan(10), "EINTR was injected");
        mock.Verify(s => s.Read(It.IsAny<int>(), It.IsAny<Memory<byte>>()), Times.AtLeast(2));
        mock.Verify(s => s.Write(It.IsAny<int>(), It.IsAny<ReadOnlySequence<byte>>()), Times.AtLeast(2));
        mock.Verify(s => s.BytesAvailable(It.IsAny<int>()), Times.AtLeast(2));
    }

    [TestCaseSource(nameof(Kinds)), CancelAfter(10_000)]
    public async Task EIO_from_read_surfaces_through_Input_as_PipeTransportException(string kind, CancellationToken ct)
    {
        Mock<ISyscalls> mock = Forwarding();
        mock.Setup(s => s.Read(It.IsAny<int>(), It.IsAny<Memory<byte>>())).Returns(-(nint)Libc.EIO);
        (FdConnection a, FdConnection b) = OpenMixed(kind, mock.Object);
        await using (a)
        await using (b)
        {
            await b.Output.WriteAsync("x"u8.ToArray(), ct); // data to read: the loop calls read and gets EIO

            var e = Assert.ThrowsAsync<PipeTransportException>(async () => await a.Input.ReadAsync(ct));
            Assert.That(e, Is.Not.InstanceOf<FdConnectionResetException>());
            Assert.That(e!.Errno, Is.EqualTo(Errno.EIO));
            Assert.That(e.Operation, Is.EqualTo("read"));
            Assert.That(e.Target, Does.StartWith("fd "));

            // The other direction is not affected.
            await a.Output.WriteAsync("still here"u8.ToArray(), ct);
            Assert.That(await ReadExactlyAsync(b.Input, 10, ct), Is.EqualTo("still here"u8.ToArray()));
        }
    }

    [TestCaseSource(nameof(Kinds)), CancelAfter(10_000)]
    public async Task ECONNRESET_from_read_surfaces_through_Input_as_FdConnectionResetException(string kind, CancellationToken ct)
    {
        Mock<ISyscalls> mock = Forwarding();
        mock.Setup(s => s.Read(It.IsAny<int>(), It.IsAny<Memory<byte>>())).Returns(-(nint)Libc.ECONNRESET);
        (FdConnection a, FdConnection b) = OpenMixed(kind, mock.Object);
        await using (a)
        await using (b)
        {
            await b.Output.WriteAsync("x"u8.ToArray(), ct);

            var e = Assert.ThrowsAsync<FdConnectionResetException>(async () => await a.Input.ReadAsync(ct));
            Assert.That(e!.Errno, Is.EqualTo(Errno.ECONNRESET));
        }
    }

    [TestCaseSource(nameof(Kinds)), CancelAfter(10_000)]
    public async Task EPIPE_from_write_surfaces_through_Output_as_FdConnectionResetException(string kind, CancellationToken ct)
    {
        Mock<ISyscalls> mock = Forwarding();
        mock.Setup(s => s.Write(It.IsAny<int>(), It.IsAny<ReadOnlySequence<byte>>())).Returns(-(nint)Libc.EPIPE);
        (FdConnection a, FdConnection b) = OpenMixed(kind, mock.Object);
        await using (a)
        await using (b)
        {
            var e = Assert.ThrowsAsync<FdConnectionResetException>(async () =>
            {
                while (true)
                {
                    ct.ThrowIfCancellationRequested();
                    FlushResult result = await a.Output.WriteAsync("x"u8.ToArray(), ct);
                    Assert.That(result.IsCompleted, Is.False, "Output completed without saying why");
                }
            });
            Assert.That(e!.Errno, Is.EqualTo(Errno.EPIPE));
            Assert.That(e.Operation, Is.EqualTo("write"));
        }
    }

    /// <summary>
    /// An I/O error of a write that comes after the application's last flush returned (the write runs
    /// inside that flush, after the flush decided its result) is thrown by DisposeAsync.
    /// </summary>
    [TestCaseSource(nameof(Kinds)), CancelAfter(10_000)]
    public async Task EIO_from_a_write_after_the_last_flush_is_thrown_by_DisposeAsync(string kind, CancellationToken ct)
    {
        bool fail = false;
        Mock<ISyscalls> mock = Forwarding();
        mock.Setup(s => s.Write(It.IsAny<int>(), It.IsAny<ReadOnlySequence<byte>>()))
            .Returns((int fd, ReadOnlySequence<byte> buffer) => Volatile.Read(ref fail) ? -(nint)Libc.EIO : LinuxSyscalls.Instance.Write(fd, buffer));
        (FdConnection a, FdConnection b) = OpenMixed(kind, mock.Object);
        await using (b)
        {
            await a.Output.WriteAsync("a"u8.ToArray(), ct);
            Assert.That(await ReadExactlyAsync(b.Input, 1, ct), Is.EqualTo("a"u8.ToArray()));

            Volatile.Write(ref fail, true);
            FlushResult flush = await a.Output.WriteAsync("b"u8.ToArray(), ct);
            Assert.That(flush.IsCompleted, Is.False);
            await a.Output.CompleteAsync();

            var e = Assert.ThrowsAsync<PipeTransportException>(async () => await a.DisposeAsync());
            Assert.That(e, Is.Not.InstanceOf<FdConnectionResetException>());
            Assert.That(e!.Errno, Is.EqualTo(Errno.EIO));
            Assert.That(e.Operation, Is.EqualTo("write"));
        }
    }

    /// <summary>
    /// An idle read parks on the read readiness after asking FIONREAD; an abort that lands between
    /// that answer and the wait closes the readiness under it. The read must end with the abort's
    /// reason, and the closed wait must not be left faulted and unobserved. The seam places the abort
    /// exactly there (right after the FIONREAD that follows the first, recorded, edge says 0).
    /// </summary>
    [TestCaseSource(nameof(Kinds)), CancelAfter(10_000)]
    public async Task An_abort_while_an_idle_read_parks_leaves_no_unobserved_task_exception(string kind, CancellationToken ct)
    {
        var reason = new InvalidOperationException("abort while parking");
        FdConnection? target = null;
        int calls = 0;
        Mock<ISyscalls> mock = Forwarding();
        mock.Setup(s => s.BytesAvailable(It.IsAny<int>()))
            .Returns((int fd) =>
            {
                if (Interlocked.Increment(ref calls) == 2)
                {
                    // Nothing buffered, and then the abort (which may close the fd: ask before it).
                    Assert.That(LinuxSyscalls.Instance.BytesAvailable(fd), Is.Zero);
                    target!.Abort(reason);
                    return 0;
                }

                return LinuxSyscalls.Instance.BytesAvailable(fd);
            });
        // The wait fails with the abort's reason, or ObjectDisposedException when the abort closed the fd.
        int unobserved = 0;
        void OnUnobserved(object? sender, UnobservedTaskExceptionEventArgs e) => Interlocked.Increment(ref unobserved);
        CollectGarbage(); // what earlier tests left is reported now, not counted here
        TaskScheduler.UnobservedTaskException += OnUnobserved;
        try
        {
            (FdConnection a, FdConnection b) = OpenMixed(kind, mock.Object);
            target = a;
            await using (a)
            await using (b)
            {
                var e = Assert.ThrowsAsync<InvalidOperationException>(async () => await a.Input.ReadAsync(ct));
                Assert.That(e, Is.SameAs(reason));
                Assert.That(calls, Is.GreaterThanOrEqualTo(2), "the abort came while the read parked");
            }

            CollectGarbage();
        }
        finally
        {
            TaskScheduler.UnobservedTaskException -= OnUnobserved;
        }

        Assert.That(unobserved, Is.Zero, "a faulted readiness wait was dropped");
    }

    /// <summary>
    /// After a short read of a pipe or stream socket the receive loop waits for the next edge without
    /// asking the fd again (Linux: a short read drained it). A syscall layer that cuts reads short
    /// on purpose says so (<see cref="ISyscalls.ShortReadMeansDrained"/> false) and the loop asks
    /// FIONREAD instead; without that, the bytes left behind would wait for an edge that never comes.
    /// </summary>
    [TestCaseSource(nameof(Kinds)), CancelAfter(30_000)]
    public async Task Reads_cut_short_by_the_syscall_layer_still_deliver_every_byte(string kind, CancellationToken ct)
    {
        int shortened = 0;
        Mock<ISyscalls> mock = Forwarding();
        mock.Setup(s => s.ShortReadMeansDrained).Returns(false);
        mock.Setup(s => s.Read(It.IsAny<int>(), It.IsAny<Memory<byte>>()))
            .Returns((int fd, Memory<byte> buffer) =>
            {
                if (buffer.Length > 1)
                {
                    Interlocked.Increment(ref shortened);
                    buffer = buffer[..(buffer.Length / 3 + 1)];
                }

                return LinuxSyscalls.Instance.Read(fd, buffer);
            });
        (FdConnection a, FdConnection b) = Open(kind, new FdConnectionOptions { Syscalls = mock.Object });
        await using (a)
        await using (b)
        {
            byte[] data = RandomBytes(1024 * 1024, 4);
            Task<byte[]> received = ReadToEndAsync(b.Input, ct);
            await SendAsync(a.Output, data, 100_000, ct, writeChunk: 5000);
            Assert.That(await received, Is.EqualTo(data));
        }

        Assert.That(shortened, Is.GreaterThan(10), "reads were cut short");
    }

    [TestCaseSource(nameof(Kinds)), CancelAfter(30_000)]
    public async Task Short_writes_still_deliver_every_byte_in_order(string kind, CancellationToken ct)
    {
        int[] sizes = [1, 7, 100, 4095, 1, 3, 65536, 13];
        int call = 0;
        int multiSegment = 0;
        int shortened = 0;
        Mock<ISyscalls> mock = Forwarding();
        mock.Setup(s => s.Write(It.IsAny<int>(), It.IsAny<ReadOnlySequence<byte>>()))
            .Returns((int fd, ReadOnlySequence<byte> buffer) =>
            {
                if (!buffer.IsSingleSegment)
                {
                    Interlocked.Increment(ref multiSegment);
                }

                long take = Math.Min(buffer.Length, sizes[Interlocked.Increment(ref call) % sizes.Length]);
                if (take < buffer.Length)
                {
                    Interlocked.Increment(ref shortened);
                }

                return LinuxSyscalls.Instance.Write(fd, buffer.Slice(0, take));
            });
        (FdConnection a, FdConnection b) = OpenMixed(kind, mock.Object);
        await using (a)
        await using (b)
        {
            byte[] data = RandomBytes(1024 * 1024, 3);
            Task<byte[]> received = ReadToEndAsync(b.Input, ct);

            // Many writes per flush: the send loop gets sequences of several blocks (writev).
            await SendAsync(a.Output, data, 100_000, ct, writeChunk: 3000);

            Assert.That(await received, Is.EqualTo(data));
        }

        Assert.That(shortened, Is.GreaterThan(100), "writes were cut short");
        Assert.That(multiSegment, Is.GreaterThan(0), "multi-segment sequences went through the seam");
    }

    /// <summary>Collects and finalizes until what was dropped has been reported (a task's exception is reported by a finalizer).</summary>
    private static void CollectGarbage()
    {
        for (int i = 0; i < 3; i++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
        }
    }

    /// <summary>A strict mock that forwards every call to the real system calls.</summary>
    internal static Mock<ISyscalls> Forwarding()
    {
        var mock = new Mock<ISyscalls>(MockBehavior.Strict);
        mock.Setup(s => s.Read(It.IsAny<int>(), It.IsAny<Memory<byte>>()))
            .Returns((int fd, Memory<byte> buffer) => LinuxSyscalls.Instance.Read(fd, buffer));
        mock.Setup(s => s.Write(It.IsAny<int>(), It.IsAny<ReadOnlySequence<byte>>()))
            .Returns((int fd, ReadOnlySequence<byte> buffer) => LinuxSyscalls.Instance.Write(fd, buffer));
        mock.Setup(s => s.BytesAvailable(It.IsAny<int>()))
            .Returns((int fd) => LinuxSyscalls.Instance.BytesAvailable(fd));
        mock.Setup(s => s.ShortReadMeansDrained).Returns(true);
        return mock;
    }

    private static (FdConnection, FdConnection) Open(string kind, FdConnectionOptions options)
    {
        if (kind == "socketpair")
        {
            return FdConnection.CreatePair(options);
        }

        (SafeFdHandle r1, SafeFdHandle w1) = Pipe();
        (SafeFdHandle r2, SafeFdHandle w2) = Pipe();
        return (FdConnection.FromFds(r1, w2, options), FdConnection.FromFds(r2, w1, options));
    }

    /// <summary>The first end goes through <paramref name="calls"/>; its peer uses the real system calls.</summary>
    private static (FdConnection, FdConnection) OpenMixed(string kind, ISyscalls calls)
    {
        var mocked = new FdConnectionOptions { Syscalls = calls };
        if (kind == "socketpair")
        {
            int r = Sys.SocketPair(out int fd0, out int fd1);
            Assert.That(r, Is.Zero);
            var h1 = new SafeFdHandle(fd1);
            return (FdConnection.FromFd(new SafeFdHandle(fd0), mocked), FdConnection.FromFd(h1));
        }

        (SafeFdHandle r1, SafeFdHandle w1) = Pipe();
        (SafeFdHandle r2, SafeFdHandle w2) = Pipe();
        return (FdConnection.FromFds(r1, w2, mocked), FdConnection.FromFds(r2, w1));
    }

    private static async Task SendAsync(PipeWriter output, byte[] data, int flushEvery, CancellationToken ct, int writeChunk = 10_000)
    {
        int unflushed = 0;
        for (int offset = 0; offset < data.Length; offset += writeChunk)
        {
            int n = Math.Min(writeChunk, data.Length - offset);
            data.AsSpan(offset, n).CopyTo(output.GetSpan(n));
            output.Advance(n);
            unflushed += n;
            if (unflushed >= flushEvery)
            {
                FlushResult result = await output.FlushAsync(ct);
                Assert.That(result.IsCompleted, Is.False, "the peer stopped reading");
                unflushed = 0;
            }
        }

        await output.CompleteAsync();
    }
}
