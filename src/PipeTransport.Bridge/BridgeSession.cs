namespace PipeTransport.Bridge;

/// <summary>Bridges two opened addresses in the directions the options ask for; ends when every direction has.</summary>
internal static class BridgeSession
{
    public static async Task RunAsync(OpenedAddress first, OpenedAddress second, BridgeOptions options,
        TransferStats stats, BridgeLog log, CancellationToken cancellationToken)
    {
        var directions = new List<Direction>(2);
        if (options.Forward)
            directions.Add(new(first.ReadAddress, first.Reader!, second.WriteAddress, second.Writer!, options, stats, second.IsWriteOnly,
                options.DumpData ? new DataDump(log.Writer, '>') : null));
        if (options.Backward)
            directions.Add(new(second.ReadAddress, second.Reader!, first.WriteAddress, first.Writer!, options, stats, first.IsWriteOnly,
                options.DumpData ? new DataDump(log.Writer, '<') : null));
        foreach (Direction direction in directions) direction.ChooseEngine();

        using var failed = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        Exception? firstError = null;
        async Task RunOne(Direction direction)
        {
            try
            {
                await direction.RunAsync(failed.Token).ConfigureAwait(false);
            }
            catch (Exception e)
            {
                // The first error wins; the other direction is torn down rather than left waiting.
                if (Interlocked.CompareExchange(ref firstError, e, null) is null && e is not OperationCanceledException)
                {
                    first.Abort(e);
                    second.Abort(e);
                }
                failed.Cancel();
                throw;
            }
        }
        try
        {
            await Task.WhenAll(directions.Select(RunOne)).ConfigureAwait(false);
        }
        catch when (firstError is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(firstError);
        }
    }
}
