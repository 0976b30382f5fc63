using System.Buffers;
using System.Diagnostics;
using System.IO.Pipelines;
using System.Net;
using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;
using Mono.Unix.Native;
using PipeTransport.Connection;
using PipeTransport.Diagnostics;
using PipeTransport.Endpoints;
using PipeTransport.Interop;

namespace PipeTransport;

/// <summary>
/// A duplex pipe over one fd (a socket, a tty) or a pair of fds (two FIFOs, two anonymous pipes,
/// stdin and stdout). A receive loop moves bytes from the fd into <see cref="Input"/> when the fd is
/// readable; a send loop moves what the application flushes into <see cref="Output"/> to the fd when
/// it is writable. Both directions are independent: the peer's EOF completes Input while Output keeps
/// working, and completing Output sends what remains and then half-closes (<c>shutdown(SHUT_WR)</c>
/// on a socket, close of a pipe's write end) while Input keeps working.
/// <para>
/// <see cref="Abort"/> and <see cref="DisposeAsync"/> may be called from any thread at any moment,
/// also while the application is inside an Input or Output call; <see cref="DisposeAsync"/> says
/// what that call then does and when buffer blocks go back to the pool.
/// </para>
/// </summary>
public sealed class FdConnection : IDuplexPipe, IAsyncDisposable
{
    // Each direction's one state word: NotStarted → Running → Ending → Ended, or NotStarted → Ended
    // when it ends before it started. Receiving also has Parked: an idle read waits on the fd's
    // readiness, with no loop. The first end wins; everything the end of a direction does happens once.
    internal const int NotStarted = 0;
    internal const int Parked = 1;
    internal const int Running = 2;
    internal const int Ending = 3;
    internal const int Ended = 4;

    private readonly FdChannel _in;
    private readonly FdChannel _out;
    private readonly FdConnectionOptions _options;
    private readonly InputReader _inputReader;
    private readonly bool _inline;
    private readonly ConnectionTransport _transport;
    private bool _closed; // under Gate: both directions ended, or an abort
    private Pipe? _input;
    private OutputWriter? _outputWriter;
    private int _receiveState;
    private int _sendState; // under Gate
    private int _openDirections = 2;
    private int _disposed;
    private int _endReason; // the first ConnectionEndReason (metrics)

    // The hand-off pause: the receive loop holds ReadingGate across each read() of the fd, and reads
    // nothing while PauseGate is set. _pause is published before PauseGate is set.
    private const int ReadingGate = 1;
    private const int PauseGate = 2;
    private int _readGate;
    private InputPause? _pause;

    // What few connections use (endpoints, raw fds, credentials, Closed, an abort) lives apart, so
    // that an idle connection does not carry it.
    private Extras? _extras;

    internal FdConnection(FdChannel input, FdChannel output, FdConnectionOptions options, SafeHandle? spareWriter = null, ConnectionTransport transport = ConnectionTransport.Unknown)
    {
        _in = input;
        _out = output;
        _options = options;
        if (spareWriter is not null)
        {
            EnsureExtras().SpareWriter = spareWriter;
        }

        // Blocking (non-pollable) fds must not run their loops on the reactor or inside the application's calls.
        _inline = options.InlineTransportScheduling && input.Pollable && output.Pollable;
        input.GrowPipe(options.PipeCapacity);
        if (output != input)
        {
            output.GrowPipe(options.PipeCapacity);
        }

        _inputReader = new InputReader(this);
        _transport = transport != ConnectionTransport.Unknown ? transport : TransportOf(input);
        TransportMetrics.ConnectionOpened(_transport);
    }

    /// <summary>
    /// What the peer sends. The receive loop starts at the first read; until bytes arrive a read waits
    /// without a pipe, a buffer or a receive loop (an idle connection holds none of them).
    /// </summary>
    public PipeReader Input => _inputReader;

    /// <summary>
    /// What goes to the peer. Complete it to half-close after the remaining bytes are sent. The
    /// pipe and the send loop are made on first use: a connection that only listens costs less.
    /// </summary>
    public PipeWriter Output => (PipeWriter?)Volatile.Read(ref _outputWriter) ?? StartSending();

    /// <summary>Output's writer if the application has asked for Output.</summary>
    internal OutputWriter? OutputIfStarted => Volatile.Read(ref _outputWriter);

    /// <summary>Cancelled when the connection is closed: both directions ended, or <see cref="Abort"/>/<see cref="DisposeAsync"/>.</summary>
    public CancellationToken Closed
    {
        get
        {
            lock (Gate)
            {
                return _closed ? new CancellationToken(true) : (EnsureExtras().ClosedCts ??= new CancellationTokenSource()).Token;
            }
        }
    }

    /// <summary>
    /// The end of the send direction, like <c>QuicStream.WritesClosed</c>. Completes once the application
    /// completed <see cref="Output"/> and every byte was written and the write side half-closed (or once
    /// disposal ended an Output the application had not completed: unsent bytes are dropped). Faults with
    /// the error of a write or of the half-close (<see cref="PipeTransportException"/>,
    /// <see cref="FdConnectionResetException"/>), also one that came after the application's last flush,
    /// or with the reason of <see cref="Abort"/> (or the peer's reset that ended the connection).
    /// An application that asks for this task gets the error here, and <see cref="DisposeAsync"/> then
    /// does not throw it.
    /// </summary>
    public Task WritesClosed
    {
        get
        {
            TaskCompletionSource closed;
            bool ended;
            Exception? end;
            lock (Gate)
            {
                Extras extras = EnsureExtras();
                if (extras.WritesClosed is { } made)
                {
                    return made.Task;
                }

                closed = extras.WritesClosed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                OutputWriter? writer = _outputWriter;
                ended = writer is null ? _sendState == Ended : writer.SendEnded;
                end = writer is null ? AbortReason : writer.SendEnd;
            }

            if (ended)
            {
                Complete(closed, end);
            }

            return closed.Task;
        }
    }

    /// <summary>The local address, for sockets (null for other fds).</summary>
    public EndPoint? LocalEndPoint => EnsureExtras().LocalEndPoint ??= SocketAddresses.TryName(_in, peer: false);

    /// <summary>The peer's address, for sockets (null for other fds).</summary>
    public EndPoint? RemoteEndPoint => EnsureExtras().RemoteEndPoint ??= SocketAddresses.TryName(_in, peer: true);

    /// <summary>The fd Input is read from, with reactor waits (see <see cref="RawFd"/> for when it is safe to read it directly).</summary>
    public RawFd InputFd => EnsureExtras().InputFd ??= new RawFd(_in, ownsChannel: false);

    /// <summary>The fd Output is written to, with reactor waits.</summary>
    public RawFd OutputFd => EnsureExtras().OutputFd ??= new RawFd(_out, ownsChannel: false);

    /// <summary>For a Unix domain socket, the peer process's pid, uid and gid (<c>SO_PEERCRED</c>); otherwise null.</summary>
    public PeerCredentials? PeerCredentials
    {
        get
        {
            Extras extras = EnsureExtras();
            if (Volatile.Read(ref extras.PeerCredentialsState) == 0)
            {
                bool unix = false;
                PeerCredentials credentials = default;
                if (_in.Kind == FdKind.Socket && !_in.IsClosed)
                {
                    try
                    {
                        InputFd.Control(fd =>
                        {
                            if (SocketAddresses.Family(fd) == Libc.AF_UNIX && Sys.GetPeerCredentials(fd, out int pid, out uint uid, out uint gid) == 0)
                            {
                                unix = true;
                                credentials = new PeerCredentials(pid, uid, gid);
                            }
                        });
                    }
                    catch (ObjectDisposedException)
                    {
                    }
                }

                extras.PeerCredentials = credentials;
                Volatile.Write(ref extras.PeerCredentialsState, unix ? 1 : 2);
            }

            return extras.PeerCredentialsState == 1 ? extras.PeerCredentials : null;
        }
    }

    /// <summary>
    /// Opens a FIFO pair: <paramref name="readPath"/> to read from, <paramref name="writePath"/> to write
    /// to. The read end opens at once (so the peer's writer can open); the call then waits,
    /// asynchronously and cancellably, until the write FIFO has a reader (no <c>ENXIO</c> reaches the
    /// caller). No thread blocks in <c>open</c>, and Input waits for the first writer: it never takes the
    /// time before the first writer for EOF. EOF comes when the last writer closes (unless
    /// <see cref="FdConnectionOptions.KeepFifoReaderOpen"/>).
    /// </summary>
    /// <param name="readPath">The FIFO to read from.</param>
    /// <param name="writePath">The FIFO to write to.</param>
    /// <param name="options">Options; <see cref="FdConnectionOptions.KeepFifoReaderOpen"/> applies here.</param>
    /// <param name="cancellationToken">Cancels the wait; everything opened so far is closed.</param>
    /// <returns>The connection.</returns>
    public static ValueTask<FdConnection> OpenFifoAsync(string readPath, string writePath, FdConnectionOptions? options = null, CancellationToken cancellationToken = default)
        => FifoOpener.OpenAsync(readPath, writePath, Checked(options), cancellationToken);

    /// <summary>
    /// Adopts two fds, one to read and one to write (anonymous pipes, FIFOs, stdin/stdout, sockets,
    /// ttys; regular files work through blocking calls behind the same API). The connection owns them
    /// from now on and closes each exactly once.
    /// </summary>
    /// <param name="input">The fd to read from.</param>
    /// <param name="output">The fd to write to.</param>
    /// <param name="options">Options.</param>
    /// <returns>The connection.</returns>
    public static FdConnection FromFds(SafeHandle input, SafeHandle output, FdConnectionOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(output);
        if (ReferenceEquals(input, output))
        {
            return FromFd(input, options);
        }

        options = Checked(options);

        // One reactor for both directions: a copy between them then involves one reactor thread.
        Reactor.EpollReactor reactor = options.Reactors.Next();
        FdChannel inChannel = FdChannel.Adopt(input, reactor, disposeHandle: true);
        FdChannel outChannel;
        try
        {
            outChannel = FdChannel.Adopt(output, reactor, disposeHandle: true);
        }
        catch
        {
            inChannel.Close();
            throw;
        }

        return new FdConnection(inChannel, outChannel, options);
    }

    /// <summary>
    /// A FIFO read end handed over by a predecessor, with the write end that keeps it from seeing EOF
    /// (closed with the connection). Only Input is meant to be used. Owns both from now on.
    /// </summary>
    internal static FdConnection FromFifoReader(SafeHandle reader, SafeHandle? spareWriter, FdConnectionOptions? options, string name)
    {
        options = Checked(options);
        FdChannel channel;
        try
        {
            channel = FdChannel.Adopt(reader, options.Reactors.Next(), disposeHandle: true, name);
        }
        catch
        {
            reader.Dispose();
            spareWriter?.Dispose();
            throw;
        }

        return new FdConnection(channel, channel, options, spareWriter);
    }

    /// <summary>Adopts one duplex fd (a socket, a tty, a character device, a file). The connection owns it from now on.</summary>
    /// <param name="fd">The fd.</param>
    /// <param name="options">Options.</param>
    /// <returns>The connection.</returns>
    public static FdConnection FromFd(SafeHandle fd, FdConnectionOptions? options = null)
    {
        options = Checked(options);
        FdChannel channel = FdChannel.Adopt(fd, options.Reactors.Next(), disposeHandle: true);
        return new FdConnection(channel, channel, options);
    }

    /// <summary>Two connected ends (a Unix <c>socketpair</c>).</summary>
    /// <param name="options">Options for both ends.</param>
    /// <returns>The two ends.</returns>
    public static (FdConnection, FdConnection) CreatePair(FdConnectionOptions? options = null)
    {
        int r = Sys.SocketPair(out int fd0, out int fd1);
        if (r < 0)
        {
            throw PipeTransportException.FromResult(r, "socketpair", null);
        }

        var h1 = new SafeFdHandle(fd1);
        FdConnection first;
        try
        {
            first = FromFd(new SafeFdHandle(fd0), options);
        }
        catch
        {
            h1.Dispose();
            throw;
        }

        return (first, FromFd(h1, options));
    }

    /// <summary>
    /// Connects a stream socket (<see cref="System.Net.Sockets.UnixDomainSocketEndPoint"/>, including
    /// abstract <c>@name</c> addresses, or <see cref="IPEndPoint"/>) without blocking: <c>EINPROGRESS</c>,
    /// then a wait for writability, then <c>SO_ERROR</c>.
    /// </summary>
    /// <param name="endPoint">Where to connect.</param>
    /// <param name="options">Options (<see cref="FdConnectionOptions.NoDelay"/> applies to TCP).</param>
    /// <param name="cancellationToken">Cancels the connect; the socket is closed.</param>
    /// <returns>The connection.</returns>
    public static ValueTask<FdConnection> ConnectAsync(EndPoint endPoint, FdConnectionOptions? options = null, CancellationToken cancellationToken = default)
        => SocketConnector.ConnectAsync(endPoint, Checked(options), cancellationToken);

    /// <summary>
    /// Tears both directions down at once: pending reads and flushes complete (Input's with
    /// <paramref name="reason"/>), unsent bytes are dropped, a socket is shut down both ways.
    /// May be called from any thread at any moment (see <see cref="DisposeAsync"/> for the contract).
    /// </summary>
    /// <param name="reason">Why; default a <see cref="PipeTransportException"/> with <c>ECONNABORTED</c>.</param>
    public void Abort(Exception? reason = null)
    {
        // Set even when a reset of the peer came first: the application gave the connection up.
        Volatile.Write(ref EnsureExtras().AbortedByApplication, true);
        AbortCore(reason ?? new PipeTransportException(Errno.ECONNABORTED, "abort", _in.Name, "The connection was aborted by the application."));
    }

    private void AbortCore(Exception reason)
    {
        if (Interlocked.CompareExchange(ref EnsureExtras().AbortReason, reason, null) is not null)
        {
            return;
        }

        NoteEnd(ConnectionEndReason.Aborted);
        Observer?.SendingFin(reason);

        // Both ends first (they read the reason), then the fd: waits the removal from epoll wakes
        // find their direction already ended.
        EndReceive();
        EndSend();
        _in.Shutdown(Libc.SHUT_RDWR);
        _in.Unregister(reason);
        _out.Unregister(reason);
        FireClosed();
    }

    /// <summary>
    /// Closes the connection and waits for both loops; every fd is closed exactly once. If the
    /// application completed <see cref="Output"/>, what it wrote is sent first (and a peer that never
    /// reads holds this up: call <see cref="Abort"/> to cut it); otherwise unsent bytes are dropped.
    /// Pending reads of Input complete (as at EOF), pending flushes complete, pending
    /// <see cref="RawFd"/> waits fail with <see cref="ObjectDisposedException"/>.
    /// <para>
    /// An error is never lost: if a write or the half-close failed after the application's last flush
    /// (or a reset of the peer dropped bytes it had flushed), and no flush or write of Output has thrown
    /// that error, this method throws it (<see cref="PipeTransportException"/>,
    /// <see cref="FdConnectionResetException"/>) once everything is closed, as <c>FileStream</c> does when
    /// its final flush fails. It does not if the application aborted the connection (it chose to drop
    /// what is unsent) or asked for <see cref="WritesClosed"/>, which reports the error instead.
    /// </para>
    /// <para>
    /// <see cref="Abort"/> and this method may be called from any thread at any moment, also while the
    /// application is inside an <see cref="Input"/> or <see cref="Output"/> call. That call then
    /// returns normally (a completed or cancelled result) or throws one of the exceptions the pipes
    /// document: the abort's reason, <see cref="PipeTransportException"/>,
    /// <see cref="FdConnectionResetException"/>, <see cref="OperationCanceledException"/>, or
    /// <see cref="InvalidOperationException"/>/<see cref="ObjectDisposedException"/> for a call made
    /// after the application's own <c>Complete</c> or after disposal. Buffer blocks go back to the
    /// pool only when the application can no longer see them: at once if no call holds them,
    /// otherwise when the read's <c>AdvanceTo</c> or the write call returns. After disposal, reads
    /// return a completed result, flushes a completed result, and <c>GetMemory</c> throws
    /// <see cref="ObjectDisposedException"/>.
    /// </para>
    /// </summary>
    /// <returns>A task that completes when everything is closed.</returns>
    /// <exception cref="PipeTransportException">A write or the half-close failed and nothing else reported it.</exception>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            NoteEnd(ConnectionEndReason.Disposed);
            EndReceive();
            if (Volatile.Read(ref _outputWriter) is not { IsCompleted: true })
            {
                EndSend(); // not completed by the application: what it did not flush is not meant to be sent
            }
        }

        Task? receive = ReceiveTask();
        if (receive is not null)
        {
            await receive.ConfigureAwait(false);
        }

        if (Volatile.Read(ref _outputWriter)?.SendTask is { } send)
        {
            await send.ConfigureAwait(false);
        }

        // The transport's ends are complete; the application's ends give their blocks back once the
        // application can no longer see them.
        _inputReader.Release();
        OutputWriter? output = Volatile.Read(ref _outputWriter);
        output?.Release();
        if (output?.TakeUnreported() is { } error && !AbortedByApplication && _extras?.WritesClosed is null)
        {
            ExceptionDispatchInfo.Throw(error);
        }
    }

    internal FdConnectionOptions Options => _options;

    /// <summary>Who hears of this connection's pauses, FINs, resets and errors (the Kestrel plug-in's log); null: nobody.</summary>
    internal IConnectionObserver? Observer
    {
        get => Volatile.Read(ref _extras)?.Observer;
        set => EnsureExtras().Observer = value;
    }

    /// <summary>
    /// The connection's lock: it orders the rare transitions (first use of Output, a parked read,
    /// the end of a direction that never started, Closed). Private to the library: the input
    /// channel is never handed out.
    /// </summary>
    internal object Gate => _in;

    private Exception? AbortReason => _extras is { } extras ? Volatile.Read(ref extras.AbortReason) : null;

    /// <summary>The application called <see cref="Abort"/> (a reset of the peer ends a socket the same way, but is not its choice).</summary>
    private bool AbortedByApplication => _extras is { } extras && Volatile.Read(ref extras.AbortedByApplication);

    private Extras EnsureExtras()
    {
        Extras? extras = Volatile.Read(ref _extras);
        if (extras is null)
        {
            var made = new Extras();
            extras = Interlocked.CompareExchange(ref _extras, made, null) ?? made;
        }

        return extras;
    }

    internal FdChannel InputChannel => _in;

    /// <summary>Input's pipe, made on first need (the first bytes, or the end of Input).</summary>
    internal Pipe InputPipe
    {
        get
        {
            Pipe? pipe = Volatile.Read(ref _input);
            if (pipe is null)
            {
                var made = new Pipe(_options.InputPipeOptions(_inline));
                pipe = Interlocked.CompareExchange(ref _input, made, null) ?? made;
            }

            return pipe;
        }
    }

    /// <summary>Input's pipe if it was made.</summary>
    internal Pipe? InputPipeIfMade => Volatile.Read(ref _input);

    /// <summary>The receive direction's state: <see cref="NotStarted"/>, <see cref="Parked"/>, <see cref="Running"/>, <see cref="Ending"/> or <see cref="Ended"/>.</summary>
    internal int ReceiveState => Volatile.Read(ref _receiveState);

    /// <summary>For diagnostics (tests that time out say where each direction stood).</summary>
    internal string DebugState =>
        $"{_inputReader.DebugState} slot={_in.Read.DebugState} hup={_in.HangUpSeen} fionread={Sys.BytesAvailable(_options.Syscalls, _in.Fd)} pipe={InputPipeMade} receive={_receiveState} send={_sendState}";

    /// <summary>The send loop waits for the fd to become writable: the kernel pushed back (tests wait on this state).</summary>
    internal bool SendBlocked => _out.Registration?.WriteWaiting == true;

    /// <summary>Whether Input's pipe exists (tests: an idle connection has none).</summary>
    internal bool InputPipeMade => Volatile.Read(ref _input) is not null;

    /// <summary>A read of Input may wait for readiness without a receive loop: the fd is polled and Input has not started or ended.</summary>
    internal bool CanParkInput => _in.Pollable && Volatile.Read(ref _receiveState) is NotStarted or Parked && !_in.IsClosed;

    /// <summary>Under <see cref="Gate"/>: a read parks on the read readiness; false if Input started or ended meanwhile.</summary>
    internal bool TryParkReceive() => Interlocked.CompareExchange(ref _receiveState, Parked, NotStarted) == NotStarted;

    /// <summary>The parked read ends without the receive loop starting (cancelled, or a recorded edge).</summary>
    internal void UnparkReceive() => Interlocked.CompareExchange(ref _receiveState, NotStarted, Parked);

    /// <summary>The write end of the FIFO this connection keeps open (<see cref="FdConnectionOptions.KeepFifoReaderOpen"/>), if any.</summary>
    internal SafeHandle? SpareWriter => Volatile.Read(ref _extras)?.SpareWriter;

    /// <summary>A close-on-exec duplicate of the fd Input reads (for a hand-off), or the negated errno.</summary>
    internal int DuplicateInputFd() => _in.WithFd(0, static (_, fd) => Sys.DuplicateCloseOnExec(fd));

    /// <summary>
    /// Stops reading the fd for a hand-off: the task completes once a read in progress has finished
    /// (its bytes go into Input) and no other will start. Then <see cref="ResumeInput"/> or
    /// <see cref="EndInputAtPause"/>. One pause at a time; not while a splice copy holds Input.
    /// </summary>
    internal Task PauseInputAsync()
    {
        if (Volatile.Read(ref _extras)?.SpliceStop is not null)
        {
            throw new InvalidOperationException($"Input of {_in.Name} is being copied by splice: it cannot be paused for a hand-off.");
        }

        var pause = new InputPause();
        if (Interlocked.CompareExchange(ref _pause, pause, null) is not null)
        {
            throw new InvalidOperationException($"Input of {_in.Name} is already paused.");
        }

        if ((Interlocked.Or(ref _readGate, PauseGate) & ReadingGate) == 0 || Volatile.Read(ref _receiveState) == Ended)
        {
            pause.Reached.TrySetResult(); // nothing reads now; the loop sees PauseGate before its next read
        }

        return pause.Reached.Task;
    }

    /// <summary>The hand-off failed: the receive loop reads on.</summary>
    internal void ResumeInput()
    {
        Interlocked.And(ref _readGate, ~PauseGate);
        Interlocked.Exchange(ref _pause, null)?.Resumed.TrySetResult(false);
    }

    /// <summary>
    /// The hand-off committed: Input ends where reading stopped (the application reads what came
    /// before, then the end), as at EOF. The fd stays open until disposal; nothing reads it here again.
    /// </summary>
    internal void EndInputAtPause()
    {
        InputPause pause = Volatile.Read(ref _pause) ?? throw new InvalidOperationException($"Input of {_in.Name} is not paused.");
        pause.Resumed.TrySetResult(true); // PauseGate stays set: a loop that starts later ends at once too
        EnsureReceiving(); // a direction without a loop gets one, which ends at its first pause point
        InputDemand?.Wake(); // a loop parked until the application reads goes to its pause point
        _in.Read.Signal(); // wakes a parked read or the loop's wait for the fd
    }

    /// <summary>Bytes Input's copies moved inside the kernel (<see cref="TrySpliceTo"/>), once each copy ended.</summary>
    internal long SplicedBytes => Volatile.Read(ref _extras)?.SplicedBytes ?? 0;

    /// <summary>
    /// <c>Input.CopyToAsync(destination)</c> inside the kernel: when <paramref name="destination"/> is the
    /// Output of a connection (this one included), both fds are pipes or sockets on epoll, nothing was
    /// read from this fd yet and nothing flushed to that one is unsent, a <see cref="SpliceCopier"/> moves
    /// the bytes and this direction's receive loop never starts. Semantics are the pipes' copy: it ends
    /// at EOF (Input then reads completed), leaves <paramref name="destination"/> open, and a write error
    /// ends the destination's send direction with that error and is thrown.
    /// </summary>
    /// <returns>The copy, or null when it must go through the pipes.</returns>
    internal Task? TrySpliceTo(PipeWriter destination, CancellationToken cancellationToken)
    {
        if (!_options.UseSplice || Volatile.Read(ref _readGate) != 0 || destination is not OutputWriter { Owner: { } target } output
            || !_in.Pollable || _in.Kind is not (FdKind.Pipe or FdKind.Socket)
            || !target._out.Pollable || target._out.Kind is not (FdKind.Pipe or FdKind.Socket)
            || Volatile.Read(ref _receiveState) != NotStarted || !output.IdleForSplice)
        {
            return null;
        }

        SpliceCopier copier;
        try
        {
            copier = new SpliceCopier(InputFd, target.OutputFd, SpliceCopier.DefaultChunkSize, _in.Name, target._out.Name);
        }
        catch (PipeTransportException)
        {
            return null; // no fd for the intermediate pipe: the pipes need none
        }

        if (Interlocked.CompareExchange(ref _receiveState, Running, NotStarted) != NotStarted)
        {
            copier.Dispose();
            return null;
        }

        _ = InputPipe;
        Extras extras = EnsureExtras();
        // The copy also stops when the destination closes (its disposal or abort): a wait on this fd would not see it.
        extras.SpliceStop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, target.Closed);
        var copied = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        extras.ReceiveTask = ReceiveBySpliceAsync(copier, target, output, copied, cancellationToken);
        return copied.Task;
    }

    /// <summary>
    /// The receive direction while a splice copy holds it (<see cref="TrySpliceTo"/>). At EOF or an error of
    /// this fd it ends like the receive loop; when the caller cancels or the destination fails, what the
    /// copier still holds goes into Input and the receive loop takes over, so Input stays readable.
    /// </summary>
    private async Task ReceiveBySpliceAsync(SpliceCopier copier, FdConnection target, OutputWriter output, TaskCompletionSource copied, CancellationToken cancellationToken)
    {
        CancellationTokenSource stop = _extras!.SpliceStop!;
        Exception? error = null, destinationError = null;
        bool eof = false, destinationGone = false, sourceAdded = false, destinationAdded = false;
        try
        {
            // Neither fd may close (and its number be reused) under a splice call; disposal waits for the copy.
            _in.Handle.DangerousAddRef(ref sourceAdded);
            target._out.Handle.DangerousAddRef(ref destinationAdded);
            await copier.CopyToEndAsync(stop.Token).ConfigureAwait(false);
            eof = true;
        }
        catch (Exception e) when (copier.DestinationFailed && e is PipeTransportException or FdConnectionResetException)
        {
            destinationError = e;
        }
        catch (Exception e) when (e is ObjectDisposedException or OperationCanceledException && !cancellationToken.IsCancellationRequested
            && target._out.IsClosed && Volatile.Read(ref _receiveState) == Running)
        {
            destinationGone = true; // disposed: as a pipe's copy finds its destination completed
        }
        catch (Exception e)
        {
            error = e;
        }
        finally
        {
            _extras!.SplicedBytes += copier.BytesCopied;
            TransportMetrics.Received((nint)copier.BytesCopied);
            TransportMetrics.Sent((nint)copier.BytesCopied);
            if (destinationAdded)
            {
                target._out.Handle.DangerousRelease();
            }

            if (sourceAdded)
            {
                _in.Handle.DangerousRelease();
            }
        }

        bool cancelled = error is OperationCanceledException && cancellationToken.IsCancellationRequested
            && Volatile.Read(ref _receiveState) == Running;
        if (!cancelled && destinationError is null && !destinationGone)
        {
            copier.Dispose();
            Exception? end = FinishReceive(eof, error);
            _extras.SpliceStop = null;
            stop.Dispose();
            if (end is null)
            {
                copied.SetResult();
            }
            else
            {
                copied.SetException(end);
            }

            return;
        }

        // The copy stops but Input goes on: bytes the copier took from this fd come first in Input.
        PipeWriter writer = _input!.Writer;
        int taken;
        while ((taken = copier.TakeBuffered(writer.GetMemory())) > 0)
        {
            writer.Advance(taken);
        }

        copier.Dispose();
        _extras.SpliceStop = null;
        stop.Dispose();
        if (destinationError is not null)
        {
            output.FailFromSplice(destinationError);
            if (output.SendTask is { } send)
            {
                await send.ConfigureAwait(false);
            }

            copied.SetException(output.TakeUnreported() ?? destinationError);
        }
        else if (destinationGone)
        {
            copied.SetResult();
        }
        else
        {
            copied.SetCanceled(cancellationToken);
        }

        await writer.FlushAsync().ConfigureAwait(false);
        await ReceiveLoopAsync().ConfigureAwait(false);
    }

    /// <summary>The receive loop's demand gate when it reads on demand (a pipe's read end), else null.</summary>
    internal ReceiveDemand? InputDemand => Volatile.Read(ref _extras) is { } extras ? Volatile.Read(ref extras.Demand) : null;

    /// <summary>The receive loop reads ahead from now on (ReadAtLeastAsync, a streaming copy): epoll reports every edge again.</summary>
    internal void ReadAhead()
    {
        if (InputDemand is { IsOff: false } demand)
        {
            _in.SetOneShotRead(false);
            demand.TurnOff();
        }
    }

    /// <summary>Starts the receive loop unless it runs or Input ended.</summary>
    internal void EnsureReceiving()
    {
        int state = Volatile.Read(ref _receiveState);
        if (state is NotStarted or Parked && Interlocked.CompareExchange(ref _receiveState, Running, state) == state)
        {
            _ = InputPipe;
            Extras extras = EnsureExtras(); // a connection that receives needs them anyway (and an idle one does not carry the field)
            if (_options.ReadPipesOnDemand && _in.Pollable && extras.Demand is null && _in.IsPipeReadEnd())
            {
                Volatile.Write(ref extras.Demand, new ReceiveDemand());
                _in.SetOneShotRead(true);
            }

            extras.ReceiveTask = _in.Pollable ? ReceiveLoopAsync() : Task.Run(ReceiveLoopAsync);
        }
    }

    /// <summary>
    /// The one transition to the end of the receive direction, for whichever comes first of
    /// <c>Input.Complete</c>, <see cref="Abort"/> and disposal (the peer's EOF and I/O errors end it
    /// from inside the receive loop). Without a loop, Input's pipe is completed here (with the abort's
    /// reason, if any) and a parked read is woken to find it; a running loop is woken and ends itself.
    /// </summary>
    internal void EndReceive()
    {
        while (true)
        {
            int state = Volatile.Read(ref _receiveState);
            if (state is NotStarted or Parked)
            {
                if (Interlocked.CompareExchange(ref _receiveState, Ended, state) != state)
                {
                    continue;
                }

                InputPipe.Writer.Complete(AbortReason);
                OnReceiveEnded(eof: false);
            }
            else if (state == Running)
            {
                if (Interlocked.CompareExchange(ref _receiveState, Ending, Running) != Running)
                {
                    continue;
                }

                _input!.Writer.CancelPendingFlush();
                InputDemand?.Wake(); // a loop parked until the application reads sees the end
                Volatile.Read(ref _pause)?.Resumed.TrySetResult(false); // a loop held at a hand-off pause sees the end
                if (Volatile.Read(ref _extras)?.SpliceStop is { } spliceStop)
                {
                    spliceStop.Cancel(); // a splice copy holds the direction: it stops at its next wait
                }
            }
            else
            {
                return; // Ending or Ended: someone came first
            }

            _in.Read.Signal(); // wakes the parked read or the loop's wait (a slot that closed meanwhile ignores it)
            return;
        }
    }

    /// <summary>
    /// The one transition to the end of the send direction for <see cref="Abort"/> and disposal of an
    /// Output the application did not complete: what is unsent is dropped. (A completed Output ends
    /// the send loop itself, after the last byte, with a half-close.)
    /// </summary>
    private void EndSend()
    {
        OutputWriter? writer;
        lock (Gate)
        {
            writer = _outputWriter;
            if (_sendState == NotStarted)
            {
                _sendState = Ended;
            }
            else if (_sendState == Running)
            {
                _sendState = Ending;
            }
            else
            {
                return;
            }
        }

        if (writer is null)
        {
            OnSendEnded(halfClose: false);
            return;
        }

        writer.Pipe.Reader.CancelPendingRead();
        _out.Registration?.Write.Signal();
    }

    private OutputWriter StartSending()
    {
        lock (Gate)
        {
            if (_outputWriter is null)
            {
                var writer = new OutputWriter(new Pipe(_options.OutputPipeOptions(_inline)), _inline ? _options.PoolSendThreshold : int.MaxValue, _options.ApplicationScheduler, this);
                if (_sendState == NotStarted)
                {
                    _sendState = Running;
                    writer.SendTask = _out.Pollable ? SendLoopAsync(writer) : Task.Run(() => SendLoopAsync(writer));
                }
                else
                {
                    // Ended before the application first wrote: writes find the reader gone.
                    writer.Pipe.Reader.Complete(AbortReason);
                    writer.SendEnd = AbortReason;
                    writer.SendEnded = true;
                }

                Volatile.Write(ref _outputWriter, writer); // published with its task: DisposeAsync awaits what it finds here
            }

            return _outputWriter;
        }
    }

    private Task? ReceiveTask()
    {
        var spin = default(SpinWait);
        while (Volatile.Read(ref _receiveState) is Running or Ending && Volatile.Read(ref _extras)?.ReceiveTask is null)
        {
            spin.SpinOnce(); // EnsureReceiving is between its state change and storing the task.
        }

        return Volatile.Read(ref _extras)?.ReceiveTask;
    }

    private async Task ReceiveLoopAsync()
    {
        PipeWriter writer = _input!.Writer;
        FdChannel channel = _in;
        Exception? error = null;
        bool eof = false;

        // Pollable fds are asked how much is buffered before a buffer is rented: an idle connection
        // holds no memory, and a FIFO whose writer has not come yet (read() says 0) is not taken for EOF.
        // The question is skipped when the answer is known: after a readiness edge that came while
        // the loop waited (new bytes, or a hang-up whose read says EOF or the error), read at once;
        // after a short read of a stream socket (drained), wait for the next edge at once.
        // In a request/response exchange that is one syscall per message instead of three.
        bool probe = channel.Pollable;
        bool waitAfterShortRead = probe && channel.DrainedByShortRead && _options.Syscalls.ShortReadMeansDrained;
        bool mayHaveData = !probe;
        ReceiveDemand? demand = InputDemand;
        try
        {
            while (Volatile.Read(ref _receiveState) == Running)
            {
                if ((Volatile.Read(ref _readGate) & PauseGate) != 0)
                {
                    if (Volatile.Read(ref _pause) is { } pause)
                    {
                        pause.Reached.TrySetResult();
                        if (await pause.Resumed.Task.ConfigureAwait(false))
                        {
                            eof = true; // handed off: Input ends where reading stopped
                            break;
                        }

                        mayHaveData = true; // an edge may have come and gone during the pause
                    }

                    continue;
                }

                if (!mayHaveData && probe)
                {
                    int available = Sys.BytesAvailable(_options.Syscalls, channel.Fd);
                    if (available == 0 && !channel.HangUpSeen)
                    {
                        ValueTask edge = channel.Read.WaitAsync(!_inline);
                        if (edge.IsCompleted)
                        {
                            edge.GetAwaiter().GetResult(); // an edge recorded earlier, maybe for bytes already read: ask again
                        }
                        else
                        {
                            await edge;
                            mayHaveData = true;
                        }

                        continue;
                    }

                    if (available < 0)
                    {
                        probe = false; // FIONREAD not supported here (ENOTTY): read and wait on EAGAIN instead.
                        waitAfterShortRead = false;
                    }
                }

                Memory<byte> memory = writer.GetMemory();
                if ((Interlocked.Or(ref _readGate, ReadingGate) & PauseGate) != 0)
                {
                    Interlocked.And(ref _readGate, ~ReadingGate);
                    continue; // a pause came since the check above: it is taken at the top
                }

                nint n = Sys.Read(_options.Syscalls, channel.Fd, memory);
                if ((Interlocked.And(ref _readGate, ~ReadingGate) & PauseGate) != 0)
                {
                    Volatile.Read(ref _pause)?.Reached.TrySetResult(); // the read in progress is done; its bytes still go into Input
                }

                if (n > 0)
                {
                    writer.Advance((int)n);
                    TransportMetrics.Received(n);
                    if (Volatile.Read(ref _outputWriter) is { } output)
                    {
                        output.InputSinceWrite = true; // what answers these bytes goes out at once
                    }

                    // A flush that does not complete at once is the backpressure: the loop stops reading.
                    ValueTask<FlushResult> flush = writer.FlushAsync();
                    FlushResult result;
                    if (flush.IsCompleted)
                    {
                        result = flush.GetAwaiter().GetResult();
                    }
                    else
                    {
                        OnInputPaused();
                        result = await flush;
                        Observer?.InputResumed();
                    }

                    if (result.IsCompleted || result.IsCanceled)
                    {
                        break;
                    }

                    if (demand is not null && !demand.IsOff)
                    {
                        // Read on demand: wait for the application to ask, then read at once (see ReceiveDemand).
                        await demand.WaitAsync();
                        mayHaveData = true;
                        continue;
                    }

                    mayHaveData = n == memory.Length;
                    // A hang-up that came with the last bytes brings no edge of its own: read on to EOF.
                    if (!mayHaveData && waitAfterShortRead && !channel.HangUpSeen && Volatile.Read(ref _receiveState) == Running)
                    {
                        ValueTask edge = channel.Read.WaitAsync(!_inline);
                        if (edge.IsCompleted)
                        {
                            edge.GetAwaiter().GetResult();
                        }
                        else
                        {
                            await edge;
                            mayHaveData = true;
                        }
                    }
                }
                else if (n == 0)
                {
                    eof = true;
                    break;
                }
                else if (n == -Libc.EAGAIN)
                {
                    mayHaveData = false;
                    await channel.Read.WaitAsync(!_inline);
                }
                else
                {
                    throw PipeTransportException.FromResult(n, "read", channel.Name);
                }
            }
        }
        catch (Exception e)
        {
            error = e;
        }

        FinishReceive(eof, error);
    }

    /// <summary>
    /// The end of the receive direction, from inside its loop (or splice copy): EOF, an error of the fd,
    /// or an end from outside. Completes Input's pipe with what a read should report, which it returns.
    /// </summary>
    private Exception? FinishReceive(bool eof, Exception? error)
    {
        // Ended from outside (Input.Complete, an abort, disposal): what woke the loop is not an error of the fd.
        bool endedFromOutside = Interlocked.Exchange(ref _receiveState, Ended) == Ending;
        Volatile.Read(ref _pause)?.Reached.TrySetResult(); // nothing reads any more
        Exception? reason = AbortReason;
        if (eof)
        {
            NoteEnd(ConnectionEndReason.Eof);
            Observer?.ReadFin();
        }
        else if (reason is null && !endedFromOutside && error is not null)
        {
            OnLoopError(error);
        }

        Exception? end = reason ?? (endedFromOutside ? null : error);
        _input!.Writer.Complete(end);
        OnReceiveEnded(eof);
        if (reason is null && error is FdConnectionResetException && _in == _out)
        {
            // A reset ends both directions of a socket: tell the send side (and Closed) now, not at
            // the application's next write.
            EndOnReset(error);
        }

        return end;
    }

    private async Task SendLoopAsync(OutputWriter output)
    {
        PipeReader reader = output.Pipe.Reader;
        FdChannel channel = _out;
        bool coalesce = _options.CoalesceFlushes && _inline;
        Exception? error = null;
        bool unsent = false; // the loop holds bytes the application flushed and the fd has not taken
        try
        {
            while (true)
            {
                ValueTask<ReadResult> read = reader.ReadAsync();
                bool resumedByFlush = !read.IsCompleted;
                ReadResult result = await read;
                if (resumedByFlush && output.InBulkFlush)
                {
                    // Inside the application's bulk flush: write on a pool thread while it produces more.
                    await output.ResumeOnThreadPool(preferLocal: false);
                }
                else if (resumedByFlush && coalesce && !result.IsCompleted && !result.IsCanceled && output.WouldGather)
                {
                    // Another answer right behind the last write: more are likely in this turn (pipelined
                    // requests, multiplexed streams). Write them together once the turn is over.
                    reader.AdvanceTo(result.Buffer.Start);
                    await output.ResumeOnThreadPool(preferLocal: true);
                    continue;
                }

                if (result.IsCanceled && output.TakeSpliceFailure() is { } spliceFailure)
                {
                    throw spliceFailure; // a splice into this fd failed: the direction ends as if this loop's write had
                }

                ReadOnlySequence<byte> buffer = result.Buffer;
                unsent = !buffer.IsEmpty;
                if (result.IsCanceled && !result.IsCompleted)
                {
                    break; // abort, or disposal without the application completing Output
                }

                if (buffer.IsEmpty)
                {
                    reader.AdvanceTo(buffer.End);
                    if (result.IsCompleted)
                    {
                        break;
                    }

                    continue;
                }

                output.InputSinceWrite = false;
                nint n = Sys.Write(_options.Syscalls, channel.Fd, buffer);
                if (n >= 0)
                {
                    TransportMetrics.Sent(n);
                    Volatile.Write(ref output.SentBytes, output.SentBytes + n);
                    reader.AdvanceTo(buffer.GetPosition(n));
                    if (coalesce)
                    {
                        output.LastWrite = Stopwatch.GetTimestamp();
                    }
                }
                else if (n == -Libc.EAGAIN)
                {
                    reader.AdvanceTo(buffer.Start);
                    await channel.Registration!.Write.WaitAsync(!_inline);
                    if (Volatile.Read(ref _sendState) != Running)
                    {
                        break; // woken by the end of the direction
                    }
                }
                else
                {
                    throw PipeTransportException.FromResult(n, "write", channel.Name);
                }
            }
        }
        catch (Exception e)
        {
            error = e;
        }

        bool endedFromOutside;
        lock (Gate)
        {
            endedFromOutside = _sendState == Ending;
            _sendState = Ended;
        }

        Exception? reason = AbortReason;
        if (reason is null && !endedFromOutside && error is not null)
        {
            OnLoopError(error);
        }

        Exception? end = reason ?? (endedFromOutside ? null : error);
        if (end is not null && (reason is null || (unsent && !AbortedByApplication)))
        {
            // What the application flushed did not all reach the fd, and not by its choice (an abort, or
            // disposal before completing Output): it must hear of it, at a flush or else at disposal.
            output.SetUnreported(end);
        }

        reader.Complete(end);
        bool halfClose = end is null && !endedFromOutside;
        if (halfClose)
        {
            Observer?.SendingFin(null);
        }

        OnSendEnded(halfClose, output, end);
        if (reason is null && error is FdConnectionResetException && _in == _out)
        {
            EndOnReset(error); // as for a reset seen by Input: Input and Closed learn of it now
        }
    }

    private void OnInputPaused()
    {
        TransportMetrics.InputPaused();
        Observer?.InputPaused();
    }

    /// <summary>An error ended a loop (not an abort or the application's end of the direction).</summary>
    private void OnLoopError(Exception error)
    {
        if (error is FdConnectionResetException)
        {
            NoteEnd(ConnectionEndReason.Reset);
            Observer?.Reset(error);
        }
        else
        {
            NoteEnd(ConnectionEndReason.Error);
            Observer?.Error(error);
        }
    }

    /// <summary>Records why the connection ends; the first reason counts.</summary>
    private void NoteEnd(ConnectionEndReason reason) => Interlocked.CompareExchange(ref _endReason, (int)reason, (int)ConnectionEndReason.None);

    private void OnReceiveEnded(bool eof)
    {
        if (_in != _out)
        {
            _in.Close();
            _extras?.SpareWriter?.Dispose();
        }
        else if (!eof)
        {
            _in.Shutdown(Libc.SHUT_RD);
        }

        DirectionEnded();
    }

    /// <param name="halfClose">Everything was written: half-close a socket (a pipe's write end is closed anyway).</param>
    /// <param name="output">Output's writer, if the application asked for Output.</param>
    /// <param name="end">What ended the direction (null: the application completed Output, or disposal).</param>
    private void OnSendEnded(bool halfClose, OutputWriter? output = null, Exception? end = null)
    {
        if (_in != _out)
        {
            // For a pipe, closing the write end is the half-close: the peer reads EOF. (close(2) of a
            // pipe or socket reports no error on Linux; nothing written is pending in it.)
            _out.Close();
        }
        else if (halfClose && _out.Shutdown(Libc.SHUT_WR) is < 0 and int failed)
        {
            // ENOTCONN: the peer reset the connection first, so it did not take everything we sent.
            end = failed == -Libc.ENOTCONN
                ? new FdConnectionResetException(Errno.ENOTCONN, "shutdown", _out.Name)
                : PipeTransportException.FromResult(failed, "shutdown", _out.Name);
            output!.SetUnreported(end);
            OnLoopError(end);
        }

        TaskCompletionSource? closed;
        lock (Gate)
        {
            if (output is not null)
            {
                output.SendEnd = end;
                output.SendEnded = true;
            }

            closed = _extras?.WritesClosed;
        }

        if (closed is not null)
        {
            Complete(closed, end);
        }

        DirectionEnded();
    }

    /// <summary>Completes <see cref="WritesClosed"/> with the end of the send direction.</summary>
    private static void Complete(TaskCompletionSource closed, Exception? end)
    {
        if (end is null)
        {
            closed.TrySetResult();
        }
        else if (closed.TrySetException(end))
        {
            // The application asked for the task; if it never awaits it, the error is its to drop, not
            // an UnobservedTaskException.
            _ = closed.Task.Exception;
        }
    }

    /// <summary>
    /// A reset of the peer (seen by Input or Output) ends both directions of a socket. It is not the
    /// application's abort: what it dropped is reported (<see cref="DisposeAsync"/>).
    /// </summary>
    private void EndOnReset(Exception reset) => AbortCore(reset);

    private void DirectionEnded()
    {
        if (Interlocked.Decrement(ref _openDirections) == 0)
        {
            _in.Close();
            _out.Close();
            _extras?.SpareWriter?.Dispose();
            NoteEnd(ConnectionEndReason.Disposed); // no reason yet: the application completed both directions
            TransportMetrics.ConnectionClosed(_transport, (ConnectionEndReason)Volatile.Read(ref _endReason));
            FireClosed();
        }
    }

    private void FireClosed()
    {
        CancellationTokenSource? cts;
        lock (Gate)
        {
            if (_closed)
            {
                return;
            }

            _closed = true;
            cts = _extras?.ClosedCts;
        }

        if (cts is not null)
        {
            // Callbacks of Closed are user code: never run them on the reactor or inside a loop.
            ThreadPool.UnsafeQueueUserWorkItem(static c => c.Cancel(), cts, preferLocal: false);
        }
    }

    /// <summary>
    /// Runs <see cref="Closed"/>'s callbacks on this thread now if the connection is closed (the run
    /// queued when it closed then finds them done). For a caller that is application code already and
    /// must have them run before it goes on.
    /// </summary>
    internal void RunClosedCallbacksNow()
    {
        CancellationTokenSource? cts;
        lock (Gate)
        {
            if (!_closed)
            {
                return;
            }

            cts = _extras?.ClosedCts;
        }

        cts?.Cancel();
    }

    /// <summary>For a connection whose maker did not say: a pipe, or a socket whose family the kernel tells (one <c>getsockname</c>).</summary>
    private static ConnectionTransport TransportOf(FdChannel channel) => channel.Kind switch
    {
        FdKind.Pipe => ConnectionTransport.Pipe,
        FdKind.Socket => channel.WithFd(0, static (_, fd) => SocketAddresses.Family(fd)) switch
        {
            Libc.AF_UNIX => ConnectionTransport.Unix,
            Libc.AF_INET or Libc.AF_INET6 when channel.DrainedByShortRead => ConnectionTransport.Tcp, // a stream socket
            _ => ConnectionTransport.Other,
        },
        _ => ConnectionTransport.Other,
    };

    private static FdConnectionOptions Checked(FdConnectionOptions? options)
    {
        options ??= FdConnectionOptions.Default;
        options.Validate();
        return options;
    }

    /// <summary>Connection state that most connections never need, allocated on first use.</summary>
    private sealed class Extras
    {
        public SafeHandle? SpareWriter;
        public volatile Task? ReceiveTask;
        public CancellationTokenSource? ClosedCts;
        public Exception? AbortReason;
        public bool AbortedByApplication;
        public TaskCompletionSource? WritesClosed;
        public EndPoint? LocalEndPoint;
        public EndPoint? RemoteEndPoint;
        public RawFd? InputFd;
        public RawFd? OutputFd;
        public int PeerCredentialsState;
        public PeerCredentials PeerCredentials;
        public IConnectionObserver? Observer;
        public CancellationTokenSource? SpliceStop;
        public long SplicedBytes;
        public ReceiveDemand? Demand;
    }
}
