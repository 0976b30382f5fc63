using System.Buffers;
using System.IO.Pipelines;
using System.Runtime.ExceptionServices;
using System.Threading.Tasks.Sources;
using PipeTransport.Reactor;

namespace PipeTransport.Connection;

/// <summary>
/// The application's view of Input. Until bytes arrive a connection holds no pipe and no receive
/// loop: a read that finds nothing buffered is parked directly on the fd's read readiness (this
/// object is the read's <see cref="IValueTaskSource{TResult}"/> and forwards the wait to the
/// readiness slot, so the application's continuation is the slot's). When the readiness fires, the
/// read's <c>GetResult</c> makes the pipe, starts the receive loop (which reads what came) and returns
/// what the pipe then holds; from then on every call forwards to the pipe's reader. An idle
/// connection so costs its fd, its connection object and this reader: no buffer, no pipe, no async
/// state machine and no second completion source. The reader also tells the connection when it is
/// completed, so a waiting receive loop stops at once instead of at the next byte.
/// </summary>
internal sealed class InputReader : PipeReader, IValueTaskSource<ReadResult>
{
    private const int Idle = 0;   // no receive loop; nothing waits on the read readiness for us
    private const int Parked = 1; // a read waits on the read readiness
    private const int Active = 2; // the pipe and its receive loop (started or ended) serve every call

    private readonly FdConnection _connection;
    private volatile int _state;
    private PipeReader? _pipe;
    private bool _cancelNext;   // CancelPendingRead with no read pending: the next read returns cancelled
    private bool _cancelParked; // CancelPendingRead woke the parked read
    private bool _ownResult;    // the last result was made here (no pipe position to advance)

    public InputReader(FdConnection connection) => _connection = connection;

    private object Gate => this;

    /// <summary>For diagnostics.</summary>
    internal string DebugState => $"reader={_state switch { Idle => "Idle", Parked => "Parked", _ => "Active" }} ownResult={_ownResult}";

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
        if (_state != Active || _ownResult)
        {
            lock (Gate)
            {
                ThrowIfOwnResultNotAdvanced();
                if (_cancelNext)
                {
                    _cancelNext = false;
                    _ownResult = true;
                    result = new ReadResult(default, isCanceled: true, isCompleted: false);
                    return true;
                }

                // Idle: the bytes may be in the kernel; a read that is parked has them first.
                if (_state == Parked || (_state == Idle && !HasInput()))
                {
                    result = default;
                    return false;
                }
            }

            Activate();
        }

        return _pipe!.TryRead(out result);
    }

    protected override ValueTask<ReadResult> ReadAtLeastAsyncCore(int minimumSize, CancellationToken cancellationToken) =>
        _state == Active && !_ownResult ? _pipe!.ReadAtLeastAsync(minimumSize, cancellationToken) : ReadAtLeastWhileIdle(minimumSize, cancellationToken);

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
        if (_state != Active)
        {
            lock (Gate)
            {
                if (_state == Idle)
                {
                    _cancelNext = true;
                    return;
                }

                if (_state == Parked)
                {
                    _cancelParked = true;
                }
            }

            if (_cancelParked)
            {
                _connection.InputChannel.Read.Signal(); // wakes the parked read, which sees _cancelParked
                return;
            }
        }

        _pipe!.CancelPendingRead();
    }

    public override void Complete(Exception? exception = null)
    {
        bool wasParked;
        lock (Gate)
        {
            wasParked = _state == Parked;
            _pipe ??= _connection.InputPipe.Reader;
            _state = Active;
        }

        _pipe!.Complete(exception);
        _connection.OnInputCompleted();
        if (wasParked)
        {
            // Completing Input while a read is pending is a misuse; the read ends as at disposal.
            _connection.InputChannel.Read.CloseWaits();
        }
    }

    public override Task CopyToAsync(PipeWriter destination, CancellationToken cancellationToken = default) =>
        ActivateForStreaming().CopyToAsync(destination, cancellationToken);

    public override Task CopyToAsync(Stream destination, CancellationToken cancellationToken = default) =>
        ActivateForStreaming().CopyToAsync(destination, cancellationToken);

    /// <summary>
    /// The connection ended Input without a receive loop (abort, disposal): a parked read ends now,
    /// with <paramref name="reason"/> (abort) or as at EOF (disposal: <see cref="ObjectDisposedException"/>).
    /// </summary>
    internal void OnInputEnded(Exception reason)
    {
        if (_state == Parked)
        {
            _connection.InputChannel.Read.CloseWaits(reason);
        }
    }

    private ValueTask<ReadResult> ReadWhileIdle(CancellationToken cancellationToken)
    {
        lock (Gate)
        {
            if (_state == Parked)
            {
                throw new InvalidOperationException("Input is already being read: concurrent reads are not supported.");
            }

            ThrowIfOwnResultNotAdvanced();
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

            if (_state == Idle && TryPark(cancellationToken, out ValueTask<ReadResult> parked))
            {
                return parked;
            }
        }

        Activate();
        return _pipe!.ReadAsync(cancellationToken);
    }

    /// <summary>
    /// Under the gate, Idle: parks the read on the read readiness if nothing is buffered. An edge
    /// already recorded (a new fd starts "ready") is consumed and the fd asked again, so the wait is
    /// only for bytes that are not there yet. False: activate instead.
    /// </summary>
    private bool TryPark(CancellationToken cancellationToken, out ValueTask<ReadResult> parked)
    {
        parked = default;
        PipeScheduler scheduler = _connection.Options.ApplicationScheduler;
        bool inline = ReferenceEquals(scheduler, PipeScheduler.Inline);
        if (!inline && !ReferenceEquals(scheduler, PipeScheduler.ThreadPool))
        {
            return false; // the readiness slot can run the continuation inline or on the pool, not on a custom scheduler
        }

        for (int attempt = 0; attempt < 4; attempt++)
        {
            if (HasInput())
            {
                return false;
            }

            ReadinessSlot readiness = _connection.InputChannel.Read;
            ValueTask wait = readiness.BeginWait(runContinuationAsynchronously: !inline, cancellationToken, out short token);
            if (!wait.IsCompleted)
            {
                _state = Parked;
                parked = new ValueTask<ReadResult>(this, token);
                return true;
            }

            if (wait.IsCanceled)
            {
                parked = ValueTask.FromCanceled<ReadResult>(cancellationToken);
                return true;
            }

            if (!wait.IsCompletedSuccessfully)
            {
                return false; // closed: the receive loop reports what ended it
            }
        }

        return false;
    }

    /// <summary>
    /// Whether a read should not park: the fd cannot be polled, something is buffered (or FIONREAD
    /// cannot tell), the peer hung up, or the connection is ending.
    /// </summary>
    private bool HasInput()
    {
        if (!_connection.CanParkInput)
        {
            return true;
        }

        FdChannel channel = _connection.InputChannel;
        return channel.HangUpSeen || channel.WaitsClosed || Interop.Sys.BytesAvailable(_connection.Options.Syscalls, channel.Fd) != 0;
    }

    /// <summary>The pipe and its receive loop take over (the loop runs here until it first waits).</summary>
    private void Activate()
    {
        lock (Gate)
        {
            _pipe ??= _connection.InputPipe.Reader;
            _state = Active;
        }

        _connection.EnsureReceiving();
    }

    private PipeReader ActivateForStreaming()
    {
        if (_state == Parked)
        {
            throw new InvalidOperationException("Input is already being read: concurrent reads are not supported.");
        }

        if (_state == Idle)
        {
            Activate();
        }

        return _pipe!;
    }

    /// <summary>Waits like a read while idle; once the pipe has the bytes, the pipe's own ReadAtLeast (and its backpressure rules) takes over.</summary>
    private async ValueTask<ReadResult> ReadAtLeastWhileIdle(int minimumSize, CancellationToken cancellationToken)
    {
        ReadResult first = await ReadWhileIdle(cancellationToken).ConfigureAwait(false);
        if (first.IsCanceled || first.IsCompleted)
        {
            return first;
        }

        if (!TakeOwnResult())
        {
            if (first.Buffer.Length >= minimumSize)
            {
                return first;
            }

            _pipe!.AdvanceTo(first.Buffer.Start);
        }

        return await _pipe!.ReadAtLeastAsync(minimumSize, cancellationToken).ConfigureAwait(false);
    }

    private ReadResult EndParkedRead(short token)
    {
        ReadinessSlot readiness = _connection.InputChannel.Read;
        Exception? failure = null;
        try
        {
            ((IValueTaskSource)readiness).GetResult(token);
        }
        catch (Exception e)
        {
            failure = e;
        }

        lock (Gate)
        {
            bool cancelled = _cancelParked;
            _cancelParked = false;
            if (cancelled || failure is OperationCanceledException)
            {
                _state = Idle; // nothing was read: the next read parks again (or finds the bytes)
                if (cancelled)
                {
                    _ownResult = true;
                    return new ReadResult(default, isCanceled: true, isCompleted: false);
                }

                ExceptionDispatchInfo.Throw(failure!);
            }

            _pipe ??= _connection.InputPipe.Reader;
            _state = Active;
        }

        if (failure is not null)
        {
            // The readiness closed: abort (its reason), or disposal / the end of Input (as at EOF).
            if (failure is not ObjectDisposedException)
            {
                ExceptionDispatchInfo.Throw(failure);
            }

            _ownResult = true;
            return new ReadResult(default, isCanceled: false, isCompleted: true);
        }

        // The fd is readable: the receive loop starts here, reads what came into the pipe and waits.
        _connection.EnsureReceiving();
        try
        {
            if (_pipe.TryRead(out ReadResult result))
            {
                return result;
            }
        }
        catch (InvalidOperationException) when (_connection.IsDisposed)
        {
            // Disposal completed the pipe's reader before this continuation ran: as at EOF.
            _ownResult = true;
            return new ReadResult(default, isCanceled: false, isCompleted: true);
        }

        // Woken with nothing to read after all (no known cause, but epoll does not promise): an empty
        // result, as a pipe never gives one; the next read waits on the pipe.
        _ownResult = true;
        return new ReadResult(default, isCanceled: false, isCompleted: false);
    }

    private void ThrowIfOwnResultNotAdvanced()
    {
        if (_ownResult)
        {
            throw new InvalidOperationException("AdvanceTo must be called after the previous read before reading again.");
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

    ReadResult IValueTaskSource<ReadResult>.GetResult(short token) => EndParkedRead(token);

    ValueTaskSourceStatus IValueTaskSource<ReadResult>.GetStatus(short token) =>
        ((IValueTaskSource)_connection.InputChannel.Read).GetStatus(token);

    void IValueTaskSource<ReadResult>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        ((IValueTaskSource)_connection.InputChannel.Read).OnCompleted(continuation, state, token, flags);
}
