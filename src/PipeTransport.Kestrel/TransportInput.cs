using System.IO.Pipelines;
using Microsoft.AspNetCore.Connections;

namespace PipeTransport.Kestrel;

/// <summary>
/// The connection's Input as Kestrel sees it: the core's reader, with a peer's reset reported as
/// Kestrel's <see cref="ConnectionResetException"/>, which Kestrel logs quietly between requests
/// instead of as a processing error.
/// </summary>
internal sealed class TransportInput(PipeReader inner, PipeConnectionContext connection) : PipeReader
{
    public override bool TryRead(out ReadResult result)
    {
        try
        {
            return inner.TryRead(out result);
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
            read = inner.ReadAsync(cancellationToken);
        }
        catch (FdConnectionResetException e)
        {
            throw Map(e);
        }
        return read.IsCompletedSuccessfully ? read : AwaitRead(read);
    }

    private async ValueTask<ReadResult> AwaitRead(ValueTask<ReadResult> read)
    {
        try
        {
            return await read.ConfigureAwait(false);
        }
        catch (FdConnectionResetException e)
        {
            throw Map(e);
        }
    }

    private ConnectionResetException Map(FdConnectionResetException e)
    {
        var reset = new ConnectionResetException(e.Message, e);
        connection.OnReset(reset);
        return reset;
    }

    public override void AdvanceTo(SequencePosition consumed) => inner.AdvanceTo(consumed);

    public override void AdvanceTo(SequencePosition consumed, SequencePosition examined) => inner.AdvanceTo(consumed, examined);

    public override void CancelPendingRead() => inner.CancelPendingRead();

    public override void Complete(Exception? exception = null) => inner.Complete(exception);

    public override ValueTask CompleteAsync(Exception? exception = null) => inner.CompleteAsync(exception);
}
