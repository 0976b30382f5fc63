using Mono.Unix.Native;
using PipeTransport.Connection;
using PipeTransport.Interop;

namespace PipeTransport.Endpoints;

/// <summary>
/// Opens FIFO pairs without blocking a thread. Linux gives no direct event for "a peer opened the
/// other end", so this combines what it does give: the read end opens at once (<c>O_NONBLOCK</c>),
/// which lets a writer's open succeed; the write end is retried on <c>ENXIO</c>; inotify's
/// <c>IN_OPEN</c> on the path wakes the retries early, and a backoff timer covers openers inotify does
/// not report (a reader still blocked in its own open).
/// </summary>
internal static class FifoOpener
{
    private const int FirstBackoffMs = 1;
    private const int MaxBackoffMs = 25;

    public static async ValueTask<FdConnection> OpenAsync(string? readPath, string? writePath, FdConnectionOptions options, CancellationToken cancellationToken)
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
        try
        {
            // The watch goes in before our own open, so no peer's open can slip between the two.
            inotify = WatchOpens(readPath, writePath, options, out int readWatch, out int writeWatch);
            int readerFd = Open(readPath, Libc.O_RDONLY);
            input = FdChannel.Adopt(new SafeFdHandle(readerFd), options.Reactors, disposeHandle: true, readPath);
            int ownOpens = 1;
            if (options.KeepFifoReaderOpen)
            {
                spare = new SafeFdHandle(Open(readPath, Libc.O_WRONLY));
                ownOpens++;
            }

            var waiter = new OpenWaiter(inotify);
            int backoff = FirstBackoffMs;
            while (output is null)
            {
                int fd = Sys.Open(writePath, Libc.O_WRONLY | Libc.O_NONBLOCK);
                if (fd >= 0)
                {
                    output = FdChannel.Adopt(new SafeFdHandle(fd), options.Reactors, disposeHandle: true, writePath);
                    break;
                }

                if (fd != -Libc.ENXIO)
                {
                    throw PipeTransportException.FromResult(fd, "open", writePath);
                }

                // ENXIO: no reader yet.
                await waiter.WaitAsync(backoff, cancellationToken).ConfigureAwait(false);
                backoff = Math.Min(backoff * 2, MaxBackoffMs);
            }

            if (readPath == writePath)
            {
                ownOpens++;
            }

            if (!options.KeepFifoReaderOpen)
            {
                // A writer has come when someone other than us opened the path, or when the read end
                // has data or has seen a writer leave (HUP).
                backoff = FirstBackoffMs;
                int opens = waiter.Count(readWatch);
                while (opens <= ownOpens && !HasWriterEvidence(input, options))
                {
                    await waiter.WaitAsync(backoff, cancellationToken).ConfigureAwait(false);
                    opens += waiter.Count(readWatch);
                    backoff = Math.Min(backoff * 2, MaxBackoffMs);
                }
            }

            _ = writeWatch;
            await waiter.DisposeAsync().ConfigureAwait(false);
            inotify = null;
            var connection = new FdConnection(input, output, options, spare);
            input = output = null;
            spare = null;
            return connection;
        }
        finally
        {
            inotify?.Close();
            input?.Close();
            output?.Close();
            spare?.Dispose();
        }
    }

    private static bool HasWriterEvidence(FdChannel input, FdConnectionOptions options) =>
        input.Registration is { HangUpSeen: true } || Sys.BytesAvailable(options.Syscalls, input.Fd) > 0;

    private static int Open(string path, int flags)
    {
        int fd = Sys.Open(path, flags | Libc.O_NONBLOCK);
        return fd >= 0 ? fd : throw PipeTransportException.FromResult(fd, "open", path);
    }

    private static FdChannel WatchOpens(string readPath, string writePath, FdConnectionOptions options, out int readWatch, out int writeWatch)
    {
        int fd = Sys.InotifyInit();
        if (fd < 0)
        {
            throw PipeTransportException.FromResult(fd, "inotify_init1", null);
        }

        var handle = new SafeFdHandle(fd);
        try
        {
            readWatch = Sys.InotifyAddWatch(fd, readPath, Libc.IN_OPEN);
            if (readWatch < 0)
            {
                throw PipeTransportException.FromResult(readWatch, "inotify_add_watch", readPath);
            }

            writeWatch = Sys.InotifyAddWatch(fd, writePath, Libc.IN_OPEN);
            if (writeWatch < 0)
            {
                throw PipeTransportException.FromResult(writeWatch, "inotify_add_watch", writePath);
            }

            return FdChannel.Adopt(handle, options.Reactors, disposeHandle: true, "inotify");
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

    /// <summary>Waits for inotify events or a timer, whichever first; counts IN_OPEN events per watch.</summary>
    private sealed class OpenWaiter : IAsyncDisposable
    {
        private readonly FdChannel _inotify;
        private readonly Dictionary<int, int> _counts = new();
        private readonly CancellationTokenSource _stop = new();
        private Task? _pending;

        public OpenWaiter(FdChannel inotify) => _inotify = inotify;

        public int Count(int watch)
        {
            Collect();
            _counts.Remove(watch, out int n);
            return n;
        }

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

            Collect();
        }

        private void Collect()
        {
            _inotify.WithFd(_counts, static (counts, fd) =>
            {
                Sys.ReadInotify(fd, counts);
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
