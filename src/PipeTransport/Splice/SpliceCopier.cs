using PipeTransport.Connection;
using PipeTransport.Interop;

namespace PipeTransport;

/// <summary>
/// Moves bytes from one fd to another inside the kernel with <c>splice(2)</c>, waiting for
/// readiness on the library's reactor through <see cref="RawFd.ReadAsync"/> and
/// <see cref="RawFd.WriteAsync"/>. When either end is a pipe or FIFO the bytes go straight
/// across; between two sockets they go through a private intermediate pipe. A regular file source
/// is sent with <c>sendfile(2)</c> (no intermediate pipe; a file never makes the copy wait).
/// </summary>
/// <remarks>
/// Both ends must be pipes, FIFOs or sockets (see <see cref="CanSplice"/>). The copier only
/// reads the source and writes the destination: it neither closes nor half-closes them, so the
/// caller decides what end of stream means (for example completing an <see cref="FdConnection"/>'s
/// Output). Nothing else may read the source or write the destination while a copy runs.
/// When a wake-up drained a pipe source, the copier yields the CPU
/// (<see cref="Reactor.SchedulingConstants.SpliceYieldsBeforeWaiting"/>) and tries again before it waits.
/// </remarks>
public sealed class SpliceCopier : IDisposable
{
    /// <summary>The default number of bytes asked of one splice call, and the intermediate pipe's size.</summary>
    public const int DefaultChunkSize = 1 << 20;

    // See SchedulingConstants.SpliceChunksPerCallback.
    private readonly int _chunksPerCallback;

    private const uint Flags = SpliceSyscalls.SPLICE_F_MOVE | SpliceSyscalls.SPLICE_F_NONBLOCK;

    private readonly RawFd _source;
    private readonly RawFd _destination;
    private readonly string _sourceName;
    private readonly string _destinationName;
    private readonly int _chunkSize;
    private readonly bool _sourceIsPipe;
    private readonly bool _sourceIsFile;
    private readonly Func<int, bool> _moveUntilSourceEmpty;
    private readonly Func<int, bool> _moveUntilDestinationFull;
    private readonly Func<int, bool> _sendUntilDestinationFull;

    // Intermediate pipe (socket to socket only): both ends are non-blocking and only this copier
    // touches them, so their state is always known and they need no reactor registration.
    private readonly SafeFdHandle? _bufferRead;
    private readonly SafeFdHandle? _bufferWrite;
    private int _buffered;
    private bool _sourceEnded;

    private int _sourceFd = -1;
    private int _destinationFd = -1;
    private Outcome _outcome;
    private Exception? _error;
    private long _bytesCopied;
    private int _running;

    private enum Outcome { Progress, SourceEmpty, DestinationFull, EndOfStream, Failed }

    /// <summary>Creates a copier from <paramref name="source"/> to <paramref name="destination"/>.</summary>
    /// <param name="source">The fd to read; a pipe, FIFO, socket or regular file (read from its current position).</param>
    /// <param name="destination">The fd to write; a pipe, FIFO or socket.</param>
    /// <param name="chunkSize">Bytes asked of one splice call; also the intermediate pipe's size.</param>
    /// <param name="sourceName">Names the source in error messages (a path or an address).</param>
    /// <param name="destinationName">Names the destination in error messages.</param>
    /// <exception cref="ArgumentException">An end is neither a pipe nor a socket (nor, for the source, a regular file).</exception>
    /// <exception cref="PipeTransportException">The intermediate pipe could not be created.</exception>
    public SpliceCopier(RawFd source, RawFd destination, int chunkSize = DefaultChunkSize,
        string? sourceName = null, string? destinationName = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(destination);
        ArgumentOutOfRangeException.ThrowIfLessThan(chunkSize, 1);
        _source = source;
        _destination = destination;
        _chunkSize = chunkSize;
        _chunksPerCallback = Math.Clamp(Reactor.SchedulingConstants.SpliceBytesPerCallback / chunkSize, 1, Reactor.SchedulingConstants.SpliceChunksPerCallback);
        _sourceName = sourceName ?? "source";
        _destinationName = destinationName ?? "destination";

        FdKind sourceKind = source.Kind, destinationKind = destination.Kind;
        if (sourceKind is not (FdKind.Pipe or FdKind.Socket or FdKind.RegularFile))
            throw new ArgumentException($"{_sourceName} is neither a pipe, a socket nor a regular file: splice cannot read it", nameof(source));
        if (destinationKind is not (FdKind.Pipe or FdKind.Socket))
            throw new ArgumentException($"{_destinationName} is neither a pipe nor a socket: splice cannot write it", nameof(destination));
        _sourceIsPipe = sourceKind == FdKind.Pipe;
        _sourceIsFile = sourceKind == FdKind.RegularFile;
        if (sourceKind == FdKind.Socket && destinationKind == FdKind.Socket)
        {
            int r = Sys.Pipe(out int readFd, out int writeFd);
            if (r < 0)
                throw PipeTransportException.FromResult(r, "pipe2", "intermediate pipe");
            _bufferRead = new SafeFdHandle(readFd);
            _bufferWrite = new SafeFdHandle(writeFd);
            // A bigger pipe means fewer splice calls per byte; the kernel may refuse past
            // /proc/sys/fs/pipe-max-size, and the default (64 KiB) still works.
            _ = Sys.Fcntl(writeFd, Libc.F_SETPIPE_SZ, chunkSize);
        }
        _moveUntilSourceEmpty = _ => { Move(); return _outcome != Outcome.SourceEmpty; };
        _moveUntilDestinationFull = _ => { Move(); return _outcome != Outcome.DestinationFull; };
        _sendUntilDestinationFull = _ => { SendFromFile(); return _outcome != Outcome.DestinationFull; };
    }

    /// <summary>Bytes written to the destination so far (safe to read from any thread).</summary>
    public long BytesCopied => Volatile.Read(ref _bytesCopied);

    /// <summary>The last failure was the destination's (a write); otherwise the source's.</summary>
    internal bool DestinationFailed { get; private set; }

    /// <summary>
    /// After a copy stopped (cancelled): reads into <paramref name="buffer"/> what the intermediate pipe still
    /// holds, bytes taken from the source that never reached the destination; 0 when it holds none.
    /// </summary>
    internal int TakeBuffered(Memory<byte> buffer)
    {
        if (_bufferRead is null || _buffered == 0)
            return 0;
        nint n = Sys.Read(LinuxSyscalls.Instance, _bufferRead.Fd, buffer);
        if (n <= 0)
            return 0;
        _buffered -= (int)n;
        return (int)n;
    }

    /// <summary>
    /// For callers inside the library whose code after the copy is short and never blocks (pipebridge,
    /// whose copy engine runs on the reactor too): the copy completes on the reactor thread that
    /// finished it, sparing the hop to the thread pool (and, in a process that had none, a pool thread).
    /// </summary>
    internal bool CompletesOnReactor { get; init; }

    /// <summary>True when the bytes go through an intermediate pipe (neither end is a pipe).</summary>
    public bool UsesIntermediatePipe => _bufferRead is not null;

    /// <summary>True if <paramref name="fd"/> is a pipe, a FIFO or a socket, the fds splice can serve here.</summary>
    public static bool CanSplice(RawFd fd)
    {
        ArgumentNullException.ThrowIfNull(fd);
        return fd.Kind is FdKind.Pipe or FdKind.Socket;
    }

    /// <summary>True if <paramref name="fd"/> can be a copier's source: what <see cref="CanSplice"/> accepts, or a regular file.</summary>
    public static bool CanSpliceFrom(RawFd fd)
    {
        ArgumentNullException.ThrowIfNull(fd);
        return fd.Kind is FdKind.Pipe or FdKind.Socket or FdKind.RegularFile;
    }

    /// <summary>
    /// Copies until the source reports end of stream; returns the bytes copied by this call. Between
    /// waits the copy runs on the reactor thread that reported the fd ready (no thread-pool hand-off
    /// per wake-up); the returned task completes on the thread pool, never on a reactor thread.
    /// </summary>
    /// <exception cref="PipeTransportException">splice failed (for example <c>EPIPE</c> when the destination's reader is gone).</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled while waiting.</exception>
    /// <exception cref="InvalidOperationException">A copy is already running on this copier.</exception>
    public async Task<long> CopyToEndAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _running, 1) != 0)
            throw new InvalidOperationException("A copy is already running.");
        long start = BytesCopied;
        if (_sourceIsFile)
        {
            try
            {
                await SendFileToEndAsync(cancellationToken).ConfigureAwait(false);
                return BytesCopied - start;
            }
            finally
            {
                Volatile.Write(ref _running, 0);
            }
        }

        // After a wait the loop runs on the reactor thread that saw the fd ready (splice never blocks,
        // so there is no reason to hand each wake-up to the thread pool); every callback's worth (at most
        // 4 MiB) of uninterrupted progress it lets that reactor's other fds have a turn, and it leaves the
        // thread before returning to the caller.
        bool onReactor = false;
        try
        {
            _source.Control(fd => _sourceFd = fd);
            _destination.Control(fd => _destinationFd = fd);
            while (true)
            {
                // Each callback runs splice until it would block; the wait is on the side that blocked.
                ValueTask wait = _source.CallOnReactorAsync(_moveUntilSourceEmpty, write: false, cancellationToken);
                onReactor |= !wait.IsCompleted;
                await wait.ConfigureAwait(false);
                if (_outcome == Outcome.DestinationFull)
                {
                    wait = _destination.CallOnReactorAsync(_moveUntilDestinationFull, write: true, cancellationToken);
                    onReactor |= !wait.IsCompleted;
                    await wait.ConfigureAwait(false);
                }
                if (_outcome == Outcome.Failed)
                    throw _error!;
                if (_outcome == Outcome.EndOfStream)
                    return BytesCopied - start;
                if (_outcome == Outcome.Progress && onReactor)
                {
                    // A source that never runs dry must not hold the reactor's other fds up: they get their
                    // turn, then the copy goes on on the same thread (whose epoll so never sleeps through it).
                    await Reactor.EpollReactor.NextTurn();
                    onReactor = Reactor.EpollReactor.IsDispatching;
                }
            }
        }
        finally
        {
            Volatile.Write(ref _running, 0);
            // The caller's continuation is its own code: never run it on a reactor thread.
            if (onReactor && !CompletesOnReactor)
                await Task.CompletedTask.ConfigureAwait(ConfigureAwaitOptions.ForceYielding);
        }
    }

    /// <summary>
    /// The regular-file source: <c>sendfile</c> until the destination is full, then a wait for it.
    /// As in nginx's event loop, the file is read on the reactor thread (from the page cache, or
    /// blocking on the disk); a callback's worth of progress gives the thread back.
    /// </summary>
    private async Task SendFileToEndAsync(CancellationToken cancellationToken)
    {
        bool onReactor = false;
        try
        {
            _source.Control(fd => _sourceFd = fd);
            _destination.Control(fd => _destinationFd = fd);
            while (true)
            {
                ValueTask wait = _destination.CallOnReactorAsync(_sendUntilDestinationFull, write: true, cancellationToken);
                onReactor |= !wait.IsCompleted;
                await wait.ConfigureAwait(false);
                if (_outcome == Outcome.Failed)
                    throw _error!;
                if (_outcome == Outcome.EndOfStream)
                    return;
                if (onReactor)
                {
                    onReactor = false;
                    await Task.CompletedTask.ConfigureAwait(ConfigureAwaitOptions.ForceYielding);
                }
            }
        }
        finally
        {
            if (onReactor && !CompletesOnReactor)
                await Task.CompletedTask.ConfigureAwait(ConfigureAwaitOptions.ForceYielding);
        }
    }

    private void SendFromFile()
    {
        if (_destination.IsClosed)
        {
            _error = new ObjectDisposedException(_destinationName, $"{_destinationName} was closed during the copy.");
            _outcome = Outcome.Failed;
            return;
        }
        for (int chunk = 0; chunk < _chunksPerCallback; chunk++)
        {
            nint n = SpliceSyscalls.SendFile(_destinationFd, _sourceFd, (nuint)_chunkSize);
            if (n > 0)
            {
                Interlocked.Add(ref _bytesCopied, n);
                continue;
            }
            if (n == 0)
            {
                _outcome = Outcome.EndOfStream;
                return;
            }
            // A regular file never says EAGAIN: the destination is full.
            if (n == -Libc.EAGAIN)
            {
                _outcome = Outcome.DestinationFull;
                return;
            }
            Fail(n, destination: n is -Libc.EPIPE or -Libc.ECONNRESET or -Libc.ENOTCONN, "sendfile");
            return;
        }
        _outcome = Outcome.Progress;
    }

    /// <summary>Closes the intermediate pipe, if any. The source and destination stay open.</summary>
    public void Dispose()
    {
        _bufferRead?.Dispose();
        _bufferWrite?.Dispose();
    }

    private void Move()
    {
        if (_destination.IsClosed)
        {
            // Its owner closed it under the copy (the number may be reused at any moment).
            _error = new ObjectDisposedException(_destinationName, $"{_destinationName} was closed during the copy.");
            _outcome = Outcome.Failed;
            return;
        }
        if (_bufferRead is null) MoveDirect();
        else MoveThroughBuffer();
    }

    private void MoveDirect()
    {
        // EAGAIN does not say which side would block, so the source is asked (level-triggered poll).
        // Not readable: the source is empty, and whatever comes next (bytes, EOF) raises a read edge.
        // Readable (bytes, or EOF: splice into a full pipe says EAGAIN even when the source has
        // ended): the destination is the one to wait for, once one more splice has confirmed it;
        // only this copier reads the source, so readable stays readable, while bytes that arrived
        // between the EAGAIN and the poll must not pass for a full destination.
        bool sourceReadable = false, movedHere = false;
        int yields = 0;
        for (int chunk = 0; chunk < _chunksPerCallback; chunk++)
        {
            nint n = SpliceSyscalls.Splice(_sourceFd, _destinationFd, (nuint)_chunkSize, Flags);
            if (n > 0)
            {
                Interlocked.Add(ref _bytesCopied, n);
                sourceReadable = false;
                movedHere = true;
                continue;
            }
            if (n == 0)
            {
                // A FIFO also reads 0 before its first writer has come; epoll reports only a writer
                // leaving (EPOLLHUP). Nothing moved and no hang-up yet: wait for the writer.
                _outcome = _sourceIsPipe && BytesCopied == 0 && !_source.HangUpSeen ? Outcome.SourceEmpty : Outcome.EndOfStream;
                return;
            }
            if (n != -Libc.EAGAIN)
            {
                // A pipe source rarely fails, and EPIPE is always the writing side.
                Fail(n, destination: n == -Libc.EPIPE || _sourceIsPipe);
                return;
            }
            if (sourceReadable)
            {
                _outcome = Outcome.DestinationFull;
                return;
            }
            if (!SpliceSyscalls.IsReadable(_sourceFd))
            {
                if (_sourceIsPipe && movedHere && yields < Reactor.SchedulingConstants.SpliceYieldsBeforeWaiting)
                {
                    // This callback drained a pipe source. A pipe that has ever been polled wakes its
                    // pollers on every write, not only when it was empty, so waiting at once would mean
                    // one wake-up per write of the producer: let a producer runnable on this CPU go on
                    // writing first (sched_yield returns at once when nothing else wants the CPU).
                    yields++;
                    Sys.Yield();
                    chunk--;
                    continue;
                }
                _outcome = Outcome.SourceEmpty;
                return;
            }
            sourceReadable = true;
            chunk--; // the confirming retry is not a chunk of progress
        }
        _outcome = Outcome.Progress;
    }

    private void MoveThroughBuffer()
    {
        int bufferRead = _bufferRead!.Fd, bufferWrite = _bufferWrite!.Fd;
        for (int chunk = 0; chunk < _chunksPerCallback; chunk++)
        {
            if (_buffered > 0)
            {
                nint n = SpliceSyscalls.Splice(bufferRead, _destinationFd, (nuint)_buffered, Flags);
                if (n > 0)
                {
                    _buffered -= (int)n;
                    Interlocked.Add(ref _bytesCopied, n);
                    continue;
                }
                // The intermediate pipe holds bytes, so EAGAIN can only mean the destination is full.
                if (n == -Libc.EAGAIN) _outcome = Outcome.DestinationFull;
                else Fail(n == 0 ? -Libc.EPIPE : n, destination: true);
                return;
            }
            if (_sourceEnded)
            {
                _outcome = Outcome.EndOfStream;
                return;
            }
            nint read = SpliceSyscalls.Splice(_sourceFd, bufferWrite, (nuint)_chunkSize, Flags);
            if (read > 0)
            {
                _buffered = (int)read;
                continue;
            }
            if (read == 0)
            {
                _sourceEnded = true;
                continue;
            }
            // The intermediate pipe is empty, so EAGAIN can only mean the source has nothing.
            if (read == -Libc.EAGAIN) _outcome = Outcome.SourceEmpty;
            else Fail(read, destination: false);
            return;
        }
        _outcome = Outcome.Progress;
    }

    private void Fail(nint negatedErrno, bool destination, string call = "splice")
    {
        DestinationFailed = destination;
        _error = PipeTransportException.FromResult(negatedErrno, call, destination ? _destinationName : _sourceName);
        _outcome = Outcome.Failed;
    }
}
