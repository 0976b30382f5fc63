using System.IO.Pipelines;
using System.Runtime.CompilerServices;
using System.Threading.Tasks.Sources;
using Microsoft.AspNetCore.Connections;

namespace PipeTransport.Kestrel;

/// <summary>
/// The connection's Input as Kestrel sees it: the core's reader, with a peer's reset reported as
/// Kestrel's <see cref="ConnectionResetException"/>, which Kestrel logs quietly between requests
/// instead of as a processing error. A read that does not complete at once is forwarded through this
/// object (it is its own <see cref="IValueTaskSource{TResult}"/>, reused for every read of the
/// connection), so a pending read, an idle keep-alive connection's steady state, allocates nothing.
/// The core's pipe completes the inner read inline (its application scheduler is
/// <see cref="PipeScheduler.Inline"/> under Kestrel); the hop to the thread pool is made here, with
/// this object as the work item, where the pipe's own <c>ThreadPool</c> scheduler would allocate a
/// work item per hop for a continuation that is not an async method's.
/// </summary>
internal sealed class TransportInput : PipeReader, IValueTaskSource<ReadResult>, IThreadPoolWorkItem
{
    private readonly PipeReader _inner;
    private readonly PipeConnectionContext _connection;
    private readonly bool _dispatch;
    private readonly Action _onInnerCompleted;
    private ManualResetValueTaskSourceCore<ReadResult> _pending;
    private ConfiguredValueTaskAwaitable<ReadResult>.ConfiguredValueTaskAwaiter _innerRead;

    /// <param name="inner">The core's Input.</param>
    /// <param name="connection">Told of a reset.</param>
    /// <param name="dispatch">Run Kestrel's continuation on the thread pool (false: inline, where the inner read completed).</param>
    public TransportInput(PipeReader inner, PipeConnectionContext connection, bool dispatch)
    {
        _inner = inner;
        _connection = connection;
        _dispatch = dispatch;
        _onInnerCompleted = OnInnerCompleted;
    }

    public override bool TryRead(out ReadResult result)
    {
        try
        {
            return _inner.TryRead(out result);
        }
        catch (FdConnectionResetException e)
        {
            throw Map(e);
        }
    }

    public override ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken = default)
    {
        ValueTask<ReadResult> read;
        try
        {
            read = _inner.ReadAsync(cancellationToken);
        }
        catch (FdConnectionResetException e)
        {
            throw Map(e);
        }

        if (read.IsCompletedSuccessfully)
        {
            return read;
        }

        if (read.IsCompleted)
        {
            try
            {
                return new ValueTask<ReadResult>(read.Result);
            }
            catch (FdConnectionResetException e)
            {
                return ValueTask.FromException<ReadResult>(Map(e));
            }
        }

        // One read at a time (the PipeReader contract; the inner reader has just enforced it), so the
        // single source can be reset here. The inner continuation is registered without capturing
        // anything; _pending honours the caller's own flags (execution context, scheduler).
        _pending.Reset();
        _innerRead = read.ConfigureAwait(false).GetAwaiter();
        _innerRead.UnsafeOnCompleted(_onInnerCompleted);
        return new ValueTask<ReadResult>(this, _pending.Version);
    }

    private void OnInnerCompleted()
    {
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

    /// <summary>
    /// Takes the inner read's outcome (on Kestrel's side of the hop: a reset fires ConnectionClosed,
    /// whose callbacks are Kestrel's) and completes the forwarded read with it.
    /// </summary>
    private void Complete()
    {
        var read = _innerRead;
        _innerRead = default;
        ReadResult result;
        try
        {
            result = read.GetResult();
        }
        catch (FdConnectionResetException e)
        {
            _pending.SetException(Map(e));
            return;
        }
        catch (Exception e)
        {
            _pending.SetException(e);
            return;
        }

        _pending.SetResult(result);
    }

    ReadResult IValueTaskSource<ReadResult>.GetResult(short token) => _pending.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource<ReadResult>.GetStatus(short token) => _pending.GetStatus(token);

    void IValueTaskSource<ReadResult>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _pending.OnCompleted(continuation, state, token, flags);

    private ConnectionResetException Map(FdConnectionResetException e)
    {
        var reset = new ConnectionResetException(e.Message, e);
        _connection.OnReset(reset);
        return reset;
    }

    public override void AdvanceTo(SequencePosition consumed) => _inner.AdvanceTo(consumed);

    public override void AdvanceTo(SequencePosition consumed, SequencePosition examined) => _inner.AdvanceTo(consumed, examined);

    public override void CancelPendingRead() => _inner.CancelPendingRead();

    // A connection that lingers on close reads on after Kestrel is done (PipeConnectionContext.DisposeAsync completes it).
    public override void Complete(Exception? exception = null)
    {
        if (!_connection.LingersOnClose)
        {
            _inner.Complete(exception);
        }
    }

    public override ValueTask CompleteAsync(Exception? exception = null) =>
        _connection.LingersOnClose ? ValueTask.CompletedTask : _inner.CompleteAsync(exception);
}
