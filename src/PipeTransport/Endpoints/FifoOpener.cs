using Mono.Unix.Native;
using PipeTransport.Connection;
using PipeTransport.Interop;
using PipeTransport.Reactor;

namespace PipeTransport.Endpoints;

/// <summary>
/// Opens FIFO ends without a thread blocked in <c>open(2)</c>. Every end is opened <c>O_NONBLOCK</c>
/// and then waits for its peer the way a blocking open would: a write end retries <c>ENXIO</c> until
/// the FIFO has a reader; a read end opens at once and, when asked, waits until a writer has opened
/// it. The waits are woken by inotify's <c>IN_OPEN</c> on the path, so cancelling one only has to
/// stop an await and close what was opened.
/// </summary>
internal static class FifoOpener
{
    private const int FirstBackoffMs = 1;
    private const int MaxBackoffMs = 25;

    /// <summary>A FIFO pair: the read end at once, then the write end once its FIFO has a reader.</summary>
    public static async ValueTask<FdConnection> OpenAsync(string readPath, string writePath, FdConnectionOptions options, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(readPath);
        ArgumentException.ThrowIfNullOrEmpty(writePath);
        CheckIsFifo(readPath);
        CheckIsFifo(writePath);
        cancellationToken.ThrowIfCancellationRequested();

        SafeFdHandle? reader = null;
        SafeFdHandle? spare = null;
        SafeFdHandle? writer = null;
        FdChannel? input = null;
        FdChannel? output = null;
        try
        {
            // The read end does not wait for its writer: the peer of a pair opens its own read end first
            // too, and our reader is what lets its writer open. Input then waits for the first writer
            // (the receive loop trusts epoll, not read()'s 0 before any writer).
            reader = OpenNow(readPath, Libc.O_RDONLY);
            if (options.KeepFifoReaderOpen)
            {
                spare = OpenNow(readPath, Libc.O_WRONLY);
            }

            writer = await OpenWriterAsync(writePath, options.Reactors, cancellationToken).ConfigureAwait(false);

            EpollReactor reactor = options.Reactors.Next();
            input = FdChannel.Adopt(reader, reactor, disposeHandle: true, readPath);
            reader = null;
            output = FdChannel.Adopt(writer, reactor, disposeHandle: true, writePath);
            writer = null;
            var connection = new FdConnection(input, output, options, spare);
            input = output = null;
            spare = null;
            return connection;
        }
        finally
        {
            input?.Close();
            output?.Close();
            reader?.Dispose();
            writer?.Dispose();
            spare?.Dispose();
        }
    }

    /// <summary>
    /// One end of a FIFO, <c>O_NONBLOCK | O_CLOEXEC</c>. A write end waits for a reader; a read end
    /// waits for its first writer when <paramref name="waitForWriter"/> is set.
    /// </summary>
    public static async ValueTask<SafeFdHandle> OpenEndAsync(string path, FileAccess access, bool waitForWriter, ReactorGroup reactors, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (access is not (FileAccess.Read or FileAccess.Write))
        {
            throw new ArgumentOutOfRangeException(nameof(access), access, "A FIFO end is opened either to read or to write.");
        }

        CheckIsFifo(path);
        cancellationToken.ThrowIfCancellationRequested();
        if (access == FileAccess.Write)
        {
            return await OpenWriterAsync(path, reactors, cancellationToken).ConfigureAwait(false);
        }

        SafeFdHandle reader = OpenNow(path, Libc.O_RDONLY);
        try
        {
            if (waitForWriter)
            {
                await WaitForWriterAsync(reader, path, reactors, cancellationToken).ConfigureAwait(false);
            }

            return reader;
        }
        catch
        {
            reader.Dispose();
            throw;
        }
    }

    /// <summary>
    /// A write end fails with <c>ENXIO</c> until the FIFO has a reader. <c>IN_OPEN</c> wakes the retry
    /// when a reader's open returns; the backoff covers a reader still blocked in its own open, which
    /// inotify reports only once it returns (and it returns only once we are in).
    /// </summary>
    private static async ValueTask<SafeFdHandle> OpenWriterAsync(string path, ReactorGroup reactors, CancellationToken cancellationToken)
    {
        OpenWatch? watch = null;
        try
        {
            int backoff = FirstBackoffMs;
            while (true)
            {
                int fd = Sys.Open(path, Libc.O_WRONLY | Libc.O_NONBLOCK);
                if (fd >= 0)
                {
                    return new SafeFdHandle(fd);
                }

                if (fd != -Libc.ENXIO)
                {
                    throw PipeTransportException.FromResult(fd, "open", path);
                }

                // The watch is made only at the first ENXIO: closing an inotify instance takes
                // milliseconds (an SRCU grace period), which an open that finds its reader at once
                // should not pay. The attempt right after the watch goes in catches a reader that came in between.
                if (watch is null)
                {
                    watch = OpenWatch.Create(path, reactors);
                    continue;
                }

                await watch.WaitAsync(backoff, cancellationToken).ConfigureAwait(false);
                backoff = Math.Min(backoff * 2, MaxBackoffMs);
            }
        }
        finally
        {
            watch?.Dispose();
        }
    }

    /// <summary>
    /// Waits until a writer has opened the FIFO since <paramref name="reader"/> was opened. A writer's
    /// open never blocks while we read, so its <c>IN_OPEN</c> always comes and no timer is needed; the
    /// event does not say who opened, so <see cref="WriterHasOpened"/> decides.
    /// </summary>
    private static async ValueTask WaitForWriterAsync(SafeFdHandle reader, string path, ReactorGroup reactors, CancellationToken cancellationToken)
    {
        ScratchPipe? scratch = null;
        OpenWatch? watch = null;
        try
        {
            while (!WriterHasOpened(reader, ref scratch, path))
            {
                // As for the write end, the watch comes only when needed, and the check after it
                // catches a writer that came before it.
                if (watch is null)
                {
                    watch = OpenWatch.Create(path, reactors);
                    continue;
                }

                await watch.WaitAsync(Timeout.Infinite, cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            watch?.Dispose();
            scratch?.Dispose();
        }
    }

    /// <summary>
    /// Whether a writer has opened the FIFO since <paramref name="reader"/> did: data is waiting, or
    /// poll reports HUP (the kernel holds HUP back from a reader until a writer has come and gone), or
    /// a writer has it open now. tee(2) asks the last without taking a byte: on an empty pipe it fails
    /// with <c>EAGAIN</c> while a writer has it open and returns 0 when none has.
    /// </summary>
    private static bool WriterHasOpened(SafeFdHandle reader, ref ScratchPipe? scratch, string path)
    {
        if (SpliceSyscalls.IsReadable(reader.Fd))
        {
            return true;
        }

        scratch ??= ScratchPipe.Create(path);
        nint r = SpliceSyscalls.Tee(reader.Fd, scratch.Write.Fd, 1, SpliceSyscalls.SPLICE_F_NONBLOCK);
        return r switch
        {
            0 => false,
            > 0 or -Libc.EAGAIN => true, // > 0: a writer's bytes arrived after the poll
            _ => throw PipeTransportException.FromResult(r, "tee", path),
        };
    }

    private static SafeFdHandle OpenNow(string path, int flags)
    {
        int fd = Sys.Open(path, flags | Libc.O_NONBLOCK);
        return fd >= 0 ? new SafeFdHandle(fd) : throw PipeTransportException.FromResult(fd, "open", path);
    }

    /// <summary>Fails at once, naming the path and errno, for a missing path, a directory or a file that is not a FIFO.</summary>
    internal static void CheckIsFifo(string path)
    {
        int r = Sys.Stat(path, followLinks: true, out uint type, out _);
        if (r < 0)
        {
            throw PipeTransportException.FromResult(r, "open", path);
        }

        if (type == Libc.S_IFDIR)
        {
            throw new PipeTransportException(Errno.EISDIR, "open", path, "is a directory, not a FIFO");
        }

        if (type != Libc.S_IFIFO)
        {
            string what = type == Libc.S_IFREG ? "a regular file" : type == Libc.S_IFSOCK ? "a socket" : "not a FIFO";
            throw new PipeTransportException(Errno.EINVAL, "open", path, $"is {what}, not a FIFO (create one with Fifo.Create or mkfifo)");
        }
    }

    /// <summary>The other pipe <see cref="WriterHasOpened"/>'s tee needs (it must have a reader, or tee fails with EPIPE).</summary>
    private sealed class ScratchPipe : IDisposable
    {
        private ScratchPipe(SafeFdHandle read, SafeFdHandle write)
        {
            Read = read;
            Write = write;
        }

        public SafeFdHandle Read { get; }

        public SafeFdHandle Write { get; }

        public static ScratchPipe Create(string path)
        {
            int r = Sys.Pipe(out int readFd, out int writeFd);
            return r >= 0
                ? new ScratchPipe(new SafeFdHandle(readFd), new SafeFdHandle(writeFd))
                : throw PipeTransportException.FromResult(r, "pipe2", path);
        }

        public void Dispose()
        {
            Read.Dispose();
            Write.Dispose();
        }
    }

    /// <summary>
    /// An inotify watch for <c>IN_OPEN</c> on one path, registered with a reactor. Its events are only
    /// hints (identical ones coalesce): the caller tries again after each.
    /// </summary>
    private sealed class OpenWatch : IDisposable
    {
        private readonly FdChannel _inotify;
        private readonly CancellationTokenSource _stop = new();
        private Task? _pending;

        private OpenWatch(FdChannel inotify) => _inotify = inotify;

        public static OpenWatch Create(string path, ReactorGroup reactors)
        {
            int fd = Sys.InotifyInit();
            if (fd < 0)
            {
                throw PipeTransportException.FromResult(fd, "inotify_init1", path);
            }

            var handle = new SafeFdHandle(fd);
            try
            {
                int watch = Sys.InotifyAddWatch(fd, path, Libc.IN_OPEN);
                if (watch < 0)
                {
                    throw PipeTransportException.FromResult(watch, "inotify_add_watch", path);
                }

                return new OpenWatch(FdChannel.Adopt(handle, reactors.Next(), disposeHandle: true, "inotify"));
            }
            catch
            {
                handle.Dispose();
                throw;
            }
        }

        /// <summary>Returns when an open was reported or after <paramref name="timeoutMs"/> (<see cref="Timeout.Infinite"/>: never); throws when cancelled.</summary>
        public async Task WaitAsync(int timeoutMs, CancellationToken cancellationToken)
        {
            // The slot takes one waiter at a time: a wait the timer beat stays pending for the next call.
            _pending ??= _inotify.Registration!.Read.WaitAsync(true, _stop.Token).AsTask();
            await _pending.WaitAsync(TimeSpan.FromMilliseconds(timeoutMs), cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            cancellationToken.ThrowIfCancellationRequested();
            if (_pending.IsCompleted)
            {
                Task reported = _pending;
                _pending = null;
                await reported.ConfigureAwait(false);
            }

            _inotify.WithFd(0, static (_, fd) =>
            {
                Sys.Drain(fd);
                return 0;
            });
        }

        /// <summary>
        /// Ends a pending wait as cancelled before closing the fd: closing under it would fault it with
        /// an ObjectDisposedException nobody observes.
        /// </summary>
        public void Dispose()
        {
            _stop.Cancel();
            _inotify.Close();
            _stop.Dispose();
        }
    }
}
