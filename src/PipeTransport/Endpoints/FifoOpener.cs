using Mono.Unix.Native;
using PipeTransport.Connection;
using PipeTransport.Interop;

namespace PipeTransport.Endpoints;

/// <summary>
/// Opens FIFO pairs without blocking a thread. Linux gives no event for "a reader opened this FIFO",
/// so the write end is retried on <c>ENXIO</c>, woken early by inotify's <c>IN_OPEN</c> on the path,
/// with a short backoff (1 to 25 ms) for openers inotify does not report (a reader still blocked in
/// its own open).
/// </summary>
internal static class FifoOpener
{
    private const int FirstBackoffMs = 1;
    private const int MaxBackoffMs = 25;

    public static async ValueTask<FdConnection> OpenAsync(string readPath, string writePath, FdConnectionOptions options, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(readPath);
        ArgumentException.ThrowIfNullOrEmpty(writePath);
        CheckIsFifo(readPath);
        CheckIsFifo(writePath);
        cancellationToken.ThrowIfCancellationRequested();

        FdChannel? input = null;
        FdChannel? output = null;
        SafeFdHandle? spare = null;
        FdChannel? inotify = null;
        OpenWaiter? waiter = null;
        try
        {
            // The read end opens at once: that is what lets the peer's writer open succeed. Input then
            // waits for the first writer (the receive loop trusts epoll, not read()'s 0 before any writer).
            int readerFd = Open(readPath, Libc.O_RDONLY);
            Reactor.EpollReactor reactor = options.Reactors.Next();
            input = FdChannel.Adopt(new SafeFdHandle(readerFd), reactor, disposeHandle: true, readPath);
            if (options.KeepFifoReaderOpen)
            {
                spare = new SafeFdHandle(Open(readPath, Libc.O_WRONLY));
            }

            // The write end needs a reader first (ENXIO until then). inotify's IN_OPEN wakes the retry
            // when a reader opens; the backoff covers a reader still blocked in its own open (not
            // reported until it returns). IN_OPEN events are only hints: identical ones coalesce.
            int backoff = FirstBackoffMs;
            while (output is null)
            {
                int fd = Sys.Open(writePath, Libc.O_WRONLY | Libc.O_NONBLOCK);
                if (fd >= 0)
                {
                    output = FdChannel.Adopt(new SafeFdHandle(fd), reactor, disposeHandle: true, writePath);
                    break;
                }

                if (fd != -Libc.ENXIO)
                {
                    throw PipeTransportException.FromResult(fd, "open", writePath);
                }

                // The watch is made only at the first ENXIO: closing an inotify instance takes
                // milliseconds (the kernel waits for an SRCU grace period), which an open that finds
                // its reader at once should not pay. The attempt right after the watch goes in
                // catches a reader that came in between.
                if (waiter is null)
                {
                    inotify = WatchOpens(writePath, options);
                    waiter = new OpenWaiter(inotify);
                    continue;
                }

                await waiter.WaitAsync(backoff, cancellationToken).ConfigureAwait(false);
                backoff = Math.Min(backoff * 2, MaxBackoffMs);
            }

            if (waiter is not null)
            {
                await waiter.DisposeAsync().ConfigureAwait(false);
                inotify = null;
                waiter = null;
            }

            var connection = new FdConnection(input, output, options, spare);
            input = output = null;
            spare = null;
            return connection;
        }
        finally
        {
            waiter?.Cancel();
            inotify?.Close();
            input?.Close();
            output?.Close();
            spare?.Dispose();
        }
    }

    private static int Open(string path, int flags)
    {
        int fd = Sys.Open(path, flags | Libc.O_NONBLOCK);
        return fd >= 0 ? fd : throw PipeTransportException.FromResult(fd, "open", path);
    }

    private static FdChannel WatchOpens(string path, FdConnectionOptions options)
    {
        int fd = Sys.InotifyInit();
        if (fd < 0)
        {
            throw PipeTransportException.FromResult(fd, "inotify_init1", null);
        }

        var handle = new SafeFdHandle(fd);
        try
        {
            int watch = Sys.InotifyAddWatch(fd, path, Libc.IN_OPEN);
            if (watch < 0)
            {
                throw PipeTransportException.FromResult(watch, "inotify_add_watch", path);
            }

            return FdChannel.Adopt(handle, options.Reactors.Next(), disposeHandle: true, "inotify");
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>Fails at once, naming the path and errno, for a missing path, a directory or a file that is not a FIFO.</summary>
    internal static void CheckIsFifo(string path)
    {
        if (Syscall.stat(path, out Stat stat) != 0)
        {
            throw new PipeTransportException(Stdlib.GetLastError(), "open", path);
        }

        FilePermissions type = stat.st_mode & FilePermissions.S_IFMT;
        if (type == FilePermissions.S_IFDIR)
        {
            throw new PipeTransportException(Errno.EISDIR, "open", path, "is a directory, not a FIFO");
        }

        if (type != FilePermissions.S_IFIFO)
        {
            string what = type == FilePermissions.S_IFREG ? "a regular file" : type == FilePermissions.S_IFSOCK ? "a socket" : "not a FIFO";
            throw new PipeTransportException(Errno.EINVAL, "open", path, $"is {what}, not a FIFO (create one with Fifo.Create or mkfifo)");
        }
    }

    /// <summary>Waits for an inotify event or a timer, whichever comes first.</summary>
    private sealed class OpenWaiter : IAsyncDisposable
    {
        private readonly FdChannel _inotify;
        private readonly CancellationTokenSource _stop = new();
        private Task? _pending;

        public OpenWaiter(FdChannel inotify) => _inotify = inotify;

        /// <summary>
        /// Ends a pending inotify wait as cancelled. Closing the fd under it would fault it with
        /// ObjectDisposedException, an exception nobody observes once the open has failed.
        /// </summary>
        public void Cancel() => _stop.Cancel();

        public async Task WaitAsync(int timeoutMs, CancellationToken cancellationToken)
        {
            _pending ??= _inotify.Registration!.Read.WaitAsync(true, _stop.Token).AsTask();
            Task delay = Task.Delay(timeoutMs, cancellationToken);
            Task first = await Task.WhenAny(_pending, delay).ConfigureAwait(false);
            cancellationToken.ThrowIfCancellationRequested();
            if (first == _pending)
            {
                _pending = null;
            }

            _inotify.WithFd(0, static (_, fd) =>
            {
                Sys.Drain(fd);
                return 0;
            });
        }

        public async ValueTask DisposeAsync()
        {
            _stop.Cancel();
            if (_pending is not null)
            {
                try
                {
                    await _pending.ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                }
            }

            _inotify.Close();
            _stop.Dispose();
        }
    }
}
