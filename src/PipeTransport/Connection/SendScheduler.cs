using System.IO.Pipelines;

namespace PipeTransport.Connection;

/// <summary>
/// Where Output's send loop resumes when the application flushes, with
/// <see cref="FdConnectionOptions.InlineTransportScheduling"/>: inline, inside the application's
/// <c>FlushAsync</c> (the lowest latency for a message), unless that flush is a bulk one
/// (<see cref="FdConnectionOptions.PoolSendThreshold"/>) and said so with <see cref="FlushToPool"/>:
/// then on a thread-pool thread, so the application goes on producing while another core writes.
/// </summary>
internal sealed class SendScheduler : PipeScheduler
{
    public static readonly SendScheduler Instance = new();

    // Set only around one pipe flush on this thread; the flush schedules at most the send loop.
    [ThreadStatic]
    private static bool t_toPool;

    private SendScheduler()
    {
    }

    /// <summary>Flushes <paramref name="writer"/>, resuming a waiting send loop on the thread pool.</summary>
    public static ValueTask<FlushResult> FlushToPool(PipeWriter writer, CancellationToken cancellationToken)
    {
        t_toPool = true;
        try
        {
            return writer.FlushAsync(cancellationToken);
        }
        finally
        {
            t_toPool = false;
        }
    }

    /// <inheritdoc/>
    public override void Schedule(Action<object?> action, object? state)
    {
        if (t_toPool)
        {
            t_toPool = false;
            System.Threading.ThreadPool.UnsafeQueueUserWorkItem(action, state, preferLocal: false);
        }
        else
        {
            action(state);
        }
    }
}
