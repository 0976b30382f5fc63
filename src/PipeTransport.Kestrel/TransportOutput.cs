using System.IO.Pipelines;
using System.Runtime.CompilerServices;
using System.Threading.Tasks.Sources;

namespace PipeTransport.Kestrel;

/// <summary>
/// The connection's Output as Kestrel sees it: the core's writer, where a flush after the peer reset
/// the connection reports "completed" rather than throwing. Kestrel treats a throwing flush as a bug
/// (it logs an error); it learns of the reset from <c>ConnectionClosed</c> and Input instead, as with
/// its own Sockets transport. A flush that waits (backpressure: more than the pause threshold not yet
/// written, e.g. every 64 KiB response) is forwarded through this object, its own reusable
/// <see cref="IValueTaskSource{TResult}"/>, so waiting allocates nothing.
/// </summary>
internal sealed class TransportOutput : PipeWriter, IValueTaskSource<FlushResult>
{
    private static readonly FlushResult s_completed = new(isCanceled: false, isCompleted: true);

    private readonly PipeWriter _inner;
    private readonly Action _onInnerCompleted;
    private ManualResetValueTaskSourceCore<FlushResult> _pending;
    private ConfiguredValueTaskAwaitable<FlushResult>.ConfiguredValueTaskAwaiter _innerFlush;

    public TransportOutput(PipeWriter inner)
    {
        _inner = inner;
        _onInnerCompleted = OnInnerCompleted;
    }

    public override void Advance(int bytes) => _inner.Advance(bytes);

    public override Memory<byte> GetMemory(int sizeHint = 0) => _inner.GetMemory(sizeHint);

    public override Span<byte> GetSpan(int sizeHint = 0) => _inner.GetSpan(sizeHint);

    public override bool CanGetUnflushedBytes => _inner.CanGetUnflushedBytes;

    public override long UnflushedBytes => _inner.UnflushedBytes;

    public override void CancelPendingFlush() => _inner.CancelPendingFlush();

    public override void Complete(Exception? exception = null) => _inner.Complete(exception);

    public override ValueTask CompleteAsync(Exception? exception = null) => _inner.CompleteAsync(exception);

    public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default)
    {
        ValueTask<FlushResult> flush;
        try
        {
            flush = _inner.FlushAsync(cancellationToken);
        }
        catch (FdConnectionResetException)
        {
            return new ValueTask<FlushResult>(s_completed);
        }

        return Forward(flush);
    }

    public override ValueTask<FlushResult> WriteAsync(ReadOnlyMemory<byte> source, CancellationToken cancellationToken = default)
    {
        ValueTask<FlushResult> write;
        try
        {
            write = _inner.WriteAsync(source, cancellationToken);
        }
        catch (FdConnectionResetException)
        {
            return new ValueTask<FlushResult>(s_completed);
        }

        return Forward(write);
    }

    private ValueTask<FlushResult> Forward(ValueTask<FlushResult> flush)
    {
        if (flush.IsCompletedSuccessfully)
        {
            return flush;
        }

        if (flush.IsCompleted)
        {
            try
            {
                return new ValueTask<FlushResult>(flush.Result);
            }
            catch (FdConnectionResetException)
            {
                return new ValueTask<FlushResult>(s_completed);
            }
        }

        // One flush at a time (the PipeWriter contract), so the single source can be reset here.
        _pending.Reset();
        _innerFlush = flush.ConfigureAwait(false).GetAwaiter();
        _innerFlush.UnsafeOnCompleted(_onInnerCompleted);
        return new ValueTask<FlushResult>(this, _pending.Version);
    }

    private void OnInnerCompleted()
    {
        var flush = _innerFlush;
        _innerFlush = default;
        FlushResult result;
        try
        {
            result = flush.GetResult();
        }
        catch (FdConnectionResetException)
        {
            result = s_completed;
        }
        catch (Exception e)
        {
            _pending.SetException(e);
            return;
        }

        _pending.SetResult(result);
    }

    FlushResult IValueTaskSource<FlushResult>.GetResult(short token) => _pending.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource<FlushResult>.GetStatus(short token) => _pending.GetStatus(token);

    void IValueTaskSource<FlushResult>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _pending.OnCompleted(continuation, state, token, flags);
}
