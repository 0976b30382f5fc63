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
/// <see cref="IValueTaskSource{TResult}"/>, so waiting allocates nothing; like
/// <see cref="TransportInput"/> it makes the hop to the thread pool itself, as its own work item.
/// </summary>
internal sealed class TransportOutput : PipeWriter, IValueTaskSource<FlushResult>, IThreadPoolWorkItem
{
    private static readonly FlushResult s_completed = new(isCanceled: false, isCompleted: true);

    private readonly PipeWriter _inner;
    private readonly bool _dispatch;
    private readonly Action _onInnerCompleted;
    private ManualResetValueTaskSourceCore<FlushResult> _pending;
    private ConfiguredValueTaskAwaitable<FlushResult>.ConfiguredValueTaskAwaiter _innerFlush;
    private FlushResult _result;
    private Exception? _error;

    /// <param name="inner">The core's Output.</param>
    /// <param name="dispatch">Run Kestrel's continuation on the thread pool (false: inline, where the inner flush completed).</param>
    public TransportOutput(PipeWriter inner, bool dispatch)
    {
        _inner = inner;
        _dispatch = dispatch;
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
        try
        {
            _result = flush.GetResult();
        }
        catch (FdConnectionResetException)
        {
            _result = s_completed;
        }
        catch (Exception e)
        {
            _error = e;
        }

        if (_dispatch)
        {
            ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: false);
        }
        else
        {
            Complete();
        }
    }

    void IThreadPoolWorkItem.Execute() => Complete();

    private void Complete()
    {
        if (_error is { } error)
        {
            _error = null;
            _pending.SetException(error);
        }
        else
        {
            var result = _result;
            _result = default;
            _pending.SetResult(result);
        }
    }

    FlushResult IValueTaskSource<FlushResult>.GetResult(short token) => _pending.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource<FlushResult>.GetStatus(short token) => _pending.GetStatus(token);

    void IValueTaskSource<FlushResult>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _pending.OnCompleted(continuation, state, token, flags);
}
