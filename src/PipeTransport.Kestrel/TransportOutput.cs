using System.IO.Pipelines;

namespace PipeTransport.Kestrel;

/// <summary>
/// The connection's Output as Kestrel sees it: the core's writer, where a flush after the peer reset
/// the connection reports "completed" rather than throwing. Kestrel treats a throwing flush as a bug
/// (it logs an error); it learns of the reset from <c>ConnectionClosed</c> and Input instead, as with
/// its own Sockets transport.
/// </summary>
internal sealed class TransportOutput(PipeWriter inner) : PipeWriter
{
    private static readonly FlushResult s_completed = new(isCanceled: false, isCompleted: true);

    public override void Advance(int bytes) => inner.Advance(bytes);

    public override Memory<byte> GetMemory(int sizeHint = 0) => inner.GetMemory(sizeHint);

    public override Span<byte> GetSpan(int sizeHint = 0) => inner.GetSpan(sizeHint);

    public override bool CanGetUnflushedBytes => inner.CanGetUnflushedBytes;

    public override long UnflushedBytes => inner.UnflushedBytes;

    public override void CancelPendingFlush() => inner.CancelPendingFlush();

    public override void Complete(Exception? exception = null) => inner.Complete(exception);

    public override ValueTask CompleteAsync(Exception? exception = null) => inner.CompleteAsync(exception);

    public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default)
    {
        ValueTask<FlushResult> flush;
        try
        {
            flush = inner.FlushAsync(cancellationToken);
        }
        catch (FdConnectionResetException)
        {
            return new ValueTask<FlushResult>(s_completed);
        }
        return flush.IsCompletedSuccessfully ? flush : AwaitFlush(flush);
    }

    public override ValueTask<FlushResult> WriteAsync(ReadOnlyMemory<byte> source, CancellationToken cancellationToken = default)
    {
        ValueTask<FlushResult> write;
        try
        {
            write = inner.WriteAsync(source, cancellationToken);
        }
        catch (FdConnectionResetException)
        {
            return new ValueTask<FlushResult>(s_completed);
        }
        return write.IsCompletedSuccessfully ? write : AwaitFlush(write);
    }

    private static async ValueTask<FlushResult> AwaitFlush(ValueTask<FlushResult> flush)
    {
        try
        {
            return await flush.ConfigureAwait(false);
        }
        catch (FdConnectionResetException)
        {
            return s_completed;
        }
    }
}
