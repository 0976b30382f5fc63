using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using Mono.Unix.Native;
using NUnit.Framework;
using PipeTransport.Interop;
using static PipeTransport.Tests.FdTestHelpers;

namespace PipeTransport.Tests;

/// <summary>
/// A write that fails after the application's last flush (the flush returned, then the send loop met
/// the error) or a half-close that fails is never silent: a later flush of Output throws it,
/// <see cref="FdConnection.WritesClosed"/> faults with it, or else <see cref="FdConnection.DisposeAsync"/>
/// throws it, once. (EIO, which a real fd does not produce on demand, is in <see cref="SyscallSeamTests"/>.)
/// </summary>
public class WriteErrorTests
{
    [Test, CancelAfter(10_000)]
    public async Task EBADF_after_the_last_flush_is_thrown_by_DisposeAsync_once(CancellationToken ct)
    {
        using var dir = new TempDirectory();
        FdConnection connection = FdConnection.FromFd(OpenReadOnlyFifo(dir));

        // write(2) says EBADF (the fd is open for reading only) after the flush has returned.
        FlushResult flush = await connection.Output.WriteAsync("x"u8.ToArray(), ct);
        Assert.That(flush.IsCompleted, Is.False);
        await connection.Output.CompleteAsync();

        var e = Assert.ThrowsAsync<PipeTransportException>(async () => await connection.DisposeAsync());
        Assert.That(e, Is.Not.InstanceOf<FdConnectionResetException>());
        Assert.That(e!.Errno, Is.EqualTo(Errno.EBADF));
        Assert.That(e.Operation, Is.EqualTo("write"));
        Assert.DoesNotThrowAsync(async () => await connection.DisposeAsync(), "reported once");
    }

    [TestCase("pipe"), TestCase("socketpair"), CancelAfter(10_000)]
    public async Task EPIPE_while_the_flushed_bytes_wait_for_the_peer_is_thrown_by_DisposeAsync(string kind, CancellationToken ct)
    {
        (FdConnection connection, SafeFdHandle peerReadEnd, SafeFdHandle? input) = Open(kind);
        using (input)
        {
            // The peer does not read: the kernel buffer fills and the send loop waits with bytes the
            // application flushed (less than the pause threshold, so the flush returned at once).
            FlushResult flush = await connection.Output.WriteAsync(new byte[768 * 1024], ct);
            Assert.That(flush.IsCompleted, Is.False);
            await connection.Output.CompleteAsync();
            while (!connection.SendBlocked)
            {
                await Task.Delay(1, ct);
            }

            peerReadEnd.Dispose(); // the waiting write meets EPIPE (no SIGPIPE in .NET)

            var e = Assert.ThrowsAsync<FdConnectionResetException>(async () => await connection.DisposeAsync());
            Assert.That(e!.Errno, Is.AnyOf(Errno.EPIPE, Errno.ECONNRESET));
            Assert.That(e.Operation, Is.EqualTo("write"));
        }
    }

    [TestCase("pipe"), TestCase("socketpair"), CancelAfter(10_000)]
    public async Task An_error_a_pending_flush_threw_is_not_thrown_again_by_DisposeAsync(string kind, CancellationToken ct)
    {
        (FdConnection connection, SafeFdHandle peerReadEnd, SafeFdHandle? input) = Open(kind, new FdConnectionOptions { OutputPauseThreshold = 64 * 1024, OutputResumeThreshold = 32 * 1024 });
        using (input)
        {
            ValueTask<FlushResult> flush = connection.Output.WriteAsync(new byte[1024 * 1024], ct);
            while (!connection.SendBlocked)
            {
                await Task.Delay(1, ct);
            }

            Assert.That(flush.IsCompleted, Is.False, "backpressure holds the flush");
            peerReadEnd.Dispose();

            Assert.That(async () => await flush, Throws.InstanceOf<FdConnectionResetException>());
            Assert.DoesNotThrowAsync(async () => await connection.DisposeAsync());
        }
    }

    [Test, CancelAfter(10_000)]
    public async Task After_the_application_aborts_DisposeAsync_does_not_throw_the_failed_write(CancellationToken ct)
    {
        using var dir = new TempDirectory();
        FdConnection connection = FdConnection.FromFd(OpenReadOnlyFifo(dir));
        await connection.Output.WriteAsync("x"u8.ToArray(), ct);
        await connection.Output.CompleteAsync();

        connection.Abort();

        Assert.DoesNotThrowAsync(async () => await connection.DisposeAsync());
    }

    [Test, CancelAfter(10_000)]
    public async Task WritesClosed_faults_with_the_failed_write_and_DisposeAsync_then_does_not_throw_it(CancellationToken ct)
    {
        using var dir = new TempDirectory();
        FdConnection connection = FdConnection.FromFd(OpenReadOnlyFifo(dir));
        Task writesClosed = connection.WritesClosed;
        await connection.Output.WriteAsync("x"u8.ToArray(), ct);
        await connection.Output.CompleteAsync();

        var e = Assert.ThrowsAsync<PipeTransportException>(async () => await writesClosed.WaitAsync(ct));
        Assert.That(e!.Errno, Is.EqualTo(Errno.EBADF));
        Assert.That(connection.WritesClosed, Is.SameAs(writesClosed));
        Assert.DoesNotThrowAsync(async () => await connection.DisposeAsync());
    }

    [Test, CancelAfter(10_000)]
    public async Task WritesClosed_completes_once_everything_is_written_and_half_closed(CancellationToken ct)
    {
        (FdConnection a, FdConnection b) = FdConnection.CreatePair();
        await using (a)
        await using (b)
        {
            Task<byte[]> received = ReadToEndAsync(b.Input, ct);
            await a.Output.WriteAsync("hello"u8.ToArray(), ct);
            Assert.That(a.WritesClosed.IsCompleted, Is.False, "Output is still open");
            await a.Output.CompleteAsync();

            await a.WritesClosed.WaitAsync(ct);
            Assert.That(await received, Is.EqualTo("hello"u8.ToArray()));
        }

        // Asked for after the end, it reports the same.
        Assert.That(a.WritesClosed.IsCompletedSuccessfully, Is.True);
    }

    /// <summary>
    /// The peer reset the TCP connection (an abortive close) before our half-close: <c>shutdown(SHUT_WR)</c>
    /// says ENOTCONN, the FIN never leaves, and the application hears of it.
    /// </summary>
    [Test, CancelAfter(10_000)]
    public async Task A_half_close_after_the_peer_reset_the_connection_is_thrown_by_DisposeAsync(CancellationToken ct)
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        Task<FdConnection> connecting = FdConnection.ConnectAsync(listener.LocalEndpoint, null, ct).AsTask();
        using (Socket peer = await listener.AcceptSocketAsync(ct))
        {
            await connecting;
            peer.LingerState = new LingerOption(true, 0);
        }

        FdConnection connection = await connecting;
        while (!connection.InputChannel.HangUpSeen)
        {
            await Task.Delay(1, ct); // the RST arrived (epoll reports it as a hang-up)
        }

        await connection.Output.CompleteAsync();

        var e = Assert.ThrowsAsync<FdConnectionResetException>(async () => await connection.DisposeAsync());
        Assert.That(e!.Errno, Is.EqualTo(Errno.ENOTCONN));
        Assert.That(e.Operation, Is.EqualTo("shutdown"));
    }

    private static SafeFdHandle OpenReadOnlyFifo(TempDirectory dir)
    {
        string fifo = dir.File("fifo");
        Fifo.Create(fifo);
        int fd = Sys.Open(fifo, Libc.O_RDONLY | Libc.O_NONBLOCK);
        Assert.That(fd, Is.GreaterThanOrEqualTo(0), "open");
        return new SafeFdHandle(fd);
    }

    /// <summary>A connection whose Output reaches <c>peerReadEnd</c>; for pipes, also the write end of its Input.</summary>
    private static (FdConnection Connection, SafeFdHandle PeerReadEnd, SafeFdHandle? Input) Open(string kind, FdConnectionOptions? options = null)
    {
        if (kind == "socketpair")
        {
            Assert.That(Sys.SocketPair(out int fd0, out int fd1), Is.Zero);
            return (FdConnection.FromFd(new SafeFdHandle(fd0), options), new SafeFdHandle(fd1), null);
        }

        // The kernel's pipe size, so the writes above fill it as they fill a socket's buffer.
        options = options?.Clone() ?? new FdConnectionOptions();
        options.PipeCapacity = 0;
        (SafeFdHandle inRead, SafeFdHandle inWrite) = Pipe();
        (SafeFdHandle outRead, SafeFdHandle outWrite) = Pipe();
        return (FdConnection.FromFds(inRead, outWrite, options), outRead, inWrite);
    }
}
