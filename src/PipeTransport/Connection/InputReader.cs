using System.Buffers;
using System.IO.Pipelines;
using System.Threading.Tasks.Sources;
using PipeTransport.Interop;
using PipeTransport.Reactor;

namespace PipeTransport.Connection;

/// <summary>
/// The application's view of Input. Until bytes arrive a connection holds no pipe and no receive
/// loop: a read that finds nothing buffered is parked here (this object is its
/// <see cref="IValueTaskSource{TResult}"/>) and the fd's read readiness is armed with a callback. The
/// first readable edge (or a hang-up, or the end of the connection) makes the pipe, starts the
/// receive loop and hands the parked read over to the pipe; from then on every call forwards to the
/// pipe's reader. An idle connection so costs a few small objects and no buffer, async state machine
/// or pipe. The reader also tells the connection when it is completed, so a waiting receive loop
/// stops at once instead of at the next byte.
/// </summary>
internal sealed class InputReader : PipeReader, IValueTaskSource<ReadResult>
{
    private const int Idle = 0;   // no receive loop, read readiness not armed by us
    private const int Armed = 1;  // read readiness armed with OnReadable; maybe a parked read
    private const int Active = 2; // the pipe and its receive loop (started or ended) serve every call

    private static readonly Action<object?> s_onReadable = static state => ((InputReader)state!).OnReadable();

    private readonly FdConnection _connection;
    private volatile int _state;
    private PipeReader? _pipe;

    // The parked read (only while Idle/Armed, or while it is being handed over to the pipe).
    // Its result lives in _completed (the core's own result field would make every idle reader larger).
    private ManualResetValueTaskSourceCore<bool> _core;
    private bool _parked;
    private bool _cancelNext;
    private bool _ownResult;
    private ParkedCancellation? _parkedCancellation;
    private ParkedCompletion? _completed;

    public InputReader(FdConnection connection) => _connection = connection;

    private object Gate => this;

    public override ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken = default)
    {
        if (_state == Active && !_ownResult)
        {
            return _pipe!.ReadAsync(cancellationToken);
        }

        return ReadWhileIdle(cancellationToken);
    }

    public override bool TryRead(out ReadResult result)
    {
        if (_state == Active && !_ownResult)
        {
            return _pipe!.TryRead(out result);
        }

        lock (Gate)
        {
            if (_cancelNext)
            {
                _cancelNext = false;
                _ownResult = true;
                result = new ReadResult(default, isCanceled: true, isCompleted: false);
                return true;
            }

            if (_state == Idle)
            {
                ArmOrActivate();
            }
        }

        if (_state == Active)
        {
            return _pipe!.TryRead(out result);
        }

        result = default;
        return false;
    }

    protected override ValueTask<ReadResult> ReadAtLeastAsyncCore(int minimumSize, CancellationToken cancellationToken) =>
        _state == Active && !_ownResult ? _pipe!.ReadAtLeastAsync(minimumSize, cancellationToken) : ReadAtLeastWhileIdle(minimumSize, cancellationToken);

    /// <summary>Waits like a read while idle; once the pipe has the bytes, the pipe's own ReadAtLeast (and its backpressure rules) takes over.</summary>
    private async ValueTask<ReadResult> ReadAtLeastWhileIdle(int minimumSize, CancellationToken cancellationToken)
    {
        ReadResult first = await ReadWhileIdle(cancellationToken).ConfigureAwait(false);
        if (first.IsCanceled || first.IsCompleted || first.Buffer.Length >= minimumSize || _ownResult)
        {
            return first;
        }

        _pipe!.AdvanceTo(first.Buffer.Start);
        return await _pipe.ReadAtLeastAsync(minimumSize, cancellationToken).ConfigureAwait(false);
    }

    public override void AdvanceTo(SequencePosition consumed)
    {
        if (!TakeOwnResult())
        {
            PipeOrThrow().AdvanceTo(consumed);
        }
    }

    public override void AdvanceTo(SequencePosition consumed, SequencePosition examined)
    {
        if (!TakeOwnResult())
        {
            PipeOrThrow().AdvanceTo(consumed, examined);
        }
    }

    public override void CancelPendingRead()
    {
        if (_state == Active)
        {
            _pipe!.CancelPendingRead();
            return;
        }

        lock (Gate)
        {
            if (_state == Active)
            {
                _pipe!.CancelPendingRead();
            }
            else if (!_parked)
            {
                _cancelNext = true;
                return;
            }
            else
            {
                _parked = false;
                _ownResult = true;
            }
        }

        CompleteParked(new ReadResult(default, isCanceled: true, isCompleted: false), null);
    }

    public override void Complete(Exception? exception = null)
    {
        lock (Gate)
        {
            if (_state != Active)
            {
                // The application is done reading: the fd's readiness is not needed any more.
                if (_state == Armed)
                {
                    _connection.InputChannel.Registration!.Read.TryDisarm();
                }

                _pipe ??= _connection.InputPipe.Reader;
                _state = Active;
            }
        }

        _pipe!.Complete(exception);
        _connection.OnInputCompleted();
        HandOverParkedRead(); // a read parked now is a misuse: it fails as the pipe says
    }

    public override Task CopyToAsync(PipeWriter destination, CancellationToken cancellationToken = default) =>
        ActivateForStreaming().CopyToAsync(destination, cancellationToken);

    public override Task CopyToAsync(Stream destination, CancellationToken cancellationToken = default) =>
        ActivateForStreaming().CopyToAsync(destination, cancellationToken);

    /// <summary>
    /// The connection ended Input (EOF is not needed: abort, disposal, completion): a parked read is
    /// handed to the pipe, whose writer is complete, and so returns at once.
    /// </summary>
    internal void OnInputEnded()
    {
        lock (Gate)
        {
            if (_state == Active)
            {
                return;
            }

            if (_state == Armed)
            {
                _connection.InputChannel.Registration!.Read.TryDisarm();
            }

            _pipe ??= _connection.InputPipe.Reader;
            _state = Active;
        }

        HandOverParkedRead();
    }

    private ValueTask<ReadResult> ReadWhileIdle(CancellationToken cancellationToken)
    {
        lock (Gate)
        {
            if (_parked)
            {
                throw new InvalidOperationException("Input is already being read: concurrent reads are not supported.");
            }

            if (_ownResult)
            {
                throw new InvalidOperationException("AdvanceTo must be called after the previous read before reading again.");
            }

            if (_cancelNext)
            {
                _cancelNext = false;
                _ownResult = true;
                return new ValueTask<ReadResult>(new ReadResult(default, isCanceled: true, isCompleted: false));
            }

            if (cancellationToken.IsCancellationRequested)
            {
                return ValueTask.FromCanceled<ReadResult>(cancellationToken);
            }

            if (_state == Idle)
            {
                ArmOrActivate();
            }

            if (_state == Armed)
            {
                _core.Reset();
                _parked = true;
                if (cancellationToken.CanBeCanceled)
                {
                    var cancellation = new ParkedCancellation { Token = cancellationToken };
                    _parkedCancellation = cancellation;
                    cancellation.Registration = cancellationToken.UnsafeRegister(static s => ((InputReader)s!).OnParkedReadCancelled(), this);
                }

                return new ValueTask<ReadResult>(this, _core.Version);
            }
        }

        return _pipe!.ReadAsync(cancellationToken);
    }

    /// <summary>
    /// Under the gate, Idle: arms the read readiness if nothing is buffered, else activates. An edge
    /// already recorded (a new fd starts "ready") is consumed and the fd asked again, so the arm waits
    /// only for bytes that are not there yet.
    /// </summary>
    private void ArmOrActivate()
    {
        if (_connection.InputChannel.Registration is not { } registration)
        {
            Activate(); // not pollable: the receive loop makes blocking calls on a thread of its own
            return;
        }

        ReadinessSlot readiness = registration.Read;
        for (int attempt = 0; attempt < 4; attempt++)
        {
            if (HasInput() || readiness.IsClosed)
            {
                break;
            }

            if (readiness.WaitWithCallback(s_onReadable, this))
            {
                _state = Armed;
                return;
            }
        }

        Activate();
    }

    /// <summary>
    /// Under the gate, Idle: whether the read should not park: the fd cannot be polled, something is
    /// buffered (or FIONREAD cannot tell), the peer hung up, or the connection is ending.
    /// </summary>
    private bool HasInput()
    {
        if (!_connection.CanParkInput)
        {
            return true;
        }

        FdChannel channel = _connection.InputChannel;
        return channel.Registration!.HangUpSeen || Sys.BytesAvailable(_connection.Options.Syscalls, channel.Fd) != 0;
    }

    /// <summary>Under the gate: the pipe and its receive loop take over.</summary>
    private void Activate()
    {
        _pipe ??= _connection.InputPipe.Reader;
        _state = Active;
        _connection.EnsureReceiving();
    }

    private PipeReader ActivateForStreaming()
    {
        lock (Gate)
        {
            if (_state == Idle)
            {
                Activate();
            }
            else if (_state == Armed)
            {
                _pipe ??= _connection.InputPipe.Reader;
                _state = Active;
                if (_connection.InputChannel.Registration!.Read.TryDisarm())
                {
                    _connection.EnsureReceiving(); // otherwise OnReadable, already under way, starts it
                }
            }
        }

        return _pipe!;
    }

    /// <summary>The armed readiness fired (reactor thread): an edge, or the fd's registration closed.</summary>
    private void OnReadable()
    {
        bool edge = _connection.InputChannel.Registration!.Read.EndCallbackWait();
        lock (Gate)
        {
            _pipe ??= _connection.InputPipe.Reader;
            _state = Active;
            if (edge)
            {
                _connection.EnsureReceiving(); // a no-op once Input has ended
            }
        }

        HandOverParkedRead();
    }

    private void OnParkedReadCancelled()
    {
        ParkedCancellation? cancellation;
        lock (Gate)
        {
            if (!_parked || _state == Active)
            {
                return; // completed, or being handed over to the pipe (which sees the same token)
            }

            _parked = false;
            cancellation = _parkedCancellation;
            _parkedCancellation = null;
        }

        CompleteParked(default, new OperationCanceledException(cancellation?.Token ?? default));
    }

    /// <summary>Moves a parked read, if any, to the pipe (state Active), completing it with the pipe's result.</summary>
    private void HandOverParkedRead()
    {
        ParkedCancellation? cancellation;
        lock (Gate)
        {
            if (!_parked)
            {
                return;
            }

            _parked = false;
            cancellation = _parkedCancellation;
            _parkedCancellation = null;
        }

        cancellation?.Registration.Dispose();
        CancellationToken token = cancellation?.Token ?? default;
        ValueTask<ReadResult> read;
        try
        {
            read = _pipe!.ReadAsync(token);
        }
        catch (Exception e)
        {
            CompleteParked(default, e);
            return;
        }

        if (read.IsCompleted)
        {
            ParkedCompletion.FromRead(this, read);
            return;
        }

        // Only when the first edge brought nothing (a spurious wake-up) or the connection is ending.
        var completion = new ParkedCompletion(this) { HandOver = read };
        read.ConfigureAwait(false).GetAwaiter().UnsafeOnCompleted(completion.OnHandOverCompleted);
    }

    /// <summary>Completes the parked read on the application's scheduler, as the pipe would.</summary>
    private void CompleteParked(ReadResult result, Exception? error)
    {
        PipeScheduler scheduler = _connection.Options.ApplicationScheduler;
        var completion = new ParkedCompletion(this) { Result = result, Error = error };
        if (ReferenceEquals(scheduler, PipeScheduler.Inline))
        {
            completion.Set();
            return;
        }

        scheduler.Schedule(static s => ((ParkedCompletion)s!).Set(), completion);
    }

    private void SetParked(ParkedCompletion completion)
    {
        if (completion.Error is null)
        {
            _completed = completion;
            _core.SetResult(true);
        }
        else
        {
            _core.SetException(completion.Error);
        }
    }

    private bool TakeOwnResult()
    {
        if (!_ownResult)
        {
            return false;
        }

        _ownResult = false;
        return true;
    }

    private PipeReader PipeOrThrow() =>
        _pipe ?? throw new InvalidOperationException("AdvanceTo was called without a read to advance.");

    /// <summary>What completes a parked read off the idle path (kept out of the reader, which every idle connection holds).</summary>
    private sealed class ParkedCompletion(InputReader reader)
    {
        public ReadResult Result;
        public Exception? Error;
        public ValueTask<ReadResult> HandOver;

        public static void FromRead(InputReader reader, ValueTask<ReadResult> read)
        {
            ReadResult result;
            try
            {
                result = read.Result;
            }
            catch (Exception e)
            {
                reader.CompleteParked(default, e);
                return;
            }

            reader.CompleteParked(result, null);
        }

        public void OnHandOverCompleted() => FromRead(reader, HandOver);

        public void Set() => reader.SetParked(this);
    }

    private sealed class ParkedCancellation
    {
        public CancellationToken Token;
        public CancellationTokenRegistration Registration;
    }

    ReadResult IValueTaskSource<ReadResult>.GetResult(short token)
    {
        _core.GetResult(token);
        ReadResult result = _completed!.Result;
        _completed = null;
        return result;
    }

    ValueTaskSourceStatus IValueTaskSource<ReadResult>.GetStatus(short token) => _core.GetStatus(token);

    void IValueTaskSource<ReadResult>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);
}
