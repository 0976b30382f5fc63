using System.Diagnostics;
using System.Globalization;

namespace PipeTransport.Bridge;

/// <summary>
/// Bridges two opened addresses in the directions the options ask for; ends when every direction has,
/// or earlier on -T (no bytes either way for that long) or -t (that long after the first direction
/// ended).
/// </summary>
internal static class BridgeSession
{
    /// <summary>The longest sleep between two looks at the byte counters for -T.</summary>
    private static readonly TimeSpan MaxIdleCheckInterval = TimeSpan.FromMilliseconds(250);

    /// <summary>Runs the session; false when a timeout ended it (the connections are aborted then).</summary>
    /// <param name="peer">The accepted peer (--fork), named by the notice at the end.</param>
    public static async Task<bool> RunAsync(OpenedAddress first, OpenedAddress second, BridgeOptions options,
        TransferStats stats, BridgeLog log, string? peer, CancellationToken cancellationToken)
    {
        var directions = new List<Direction>(2);
        if (options.Forward)
            directions.Add(new(first.ReadAddress, first.Reader!, second.WriteAddress, second.Writer!, options, stats, second.IsWriteOnly,
                options.DumpText || options.DumpHex ? new DataDump(log.Writer, '>', options.DumpText, options.DumpHex) : null));
        if (options.Backward)
            directions.Add(new(second.ReadAddress, second.Reader!, first.WriteAddress, first.Writer!, options, stats, first.IsWriteOnly,
                options.DumpText || options.DumpHex ? new DataDump(log.Writer, '<', options.DumpText, options.DumpHex) : null));
        foreach (Direction direction in directions)
            log.Info($"{direction.SourceAddress} > {direction.DestinationAddress}: {direction.ChooseEngine().ToString().ToLowerInvariant()} engine");

        var elapsed = Stopwatch.StartNew();
        using var ended = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        Exception? firstError = null;
        string? timeout = null;
        async Task RunOne(Direction direction)
        {
            try
            {
                await direction.RunAsync(ended.Token).ConfigureAwait(false);
            }
            catch (Exception e)
            {
                // The first error wins; the other direction is torn down rather than left waiting.
                if (Interlocked.CompareExchange(ref firstError, e, null) is null && e is not OperationCanceledException && timeout is null)
                {
                    first.Abort(e);
                    second.Abort(e);
                }
                ended.Cancel();
                throw;
            }
        }
        Task[] running = directions.Select(RunOne).ToArray();
        try
        {
            try
            {
                timeout = await WatchAsync(running, directions, options, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception) when (cancellationToken.IsCancellationRequested)
            {
                // Stopped (SIGINT/SIGTERM): the directions see the same token, and --fork aborts their
                // connections too, so a direction may end in the abort's error instead: either is the stop.
                await Task.WhenAll(running).ContinueWith(_ => { }, TaskScheduler.Default).ConfigureAwait(false);
                throw new OperationCanceledException(cancellationToken);
            }
            if (timeout is not null)
            {
                log.Notice(timeout);
                ended.Cancel();
                first.Abort(null);
                second.Abort(null);
            }
            await Task.WhenAll(running).ConfigureAwait(false);
        }
        catch when (timeout is not null)
        {
            // The timeout ended the session: what the aborted directions threw is no failure.
        }
        catch when (firstError is not null && !cancellationToken.IsCancellationRequested)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(firstError);
        }
        finally
        {
            if (log.ShowsNotices) log.Notice(Summary(directions, options, peer, elapsed.Elapsed));
        }
        return timeout is null;
    }

    /// <summary>
    /// Waits for the directions to end; returns why a timeout (-T, -t) ended the session first, or null.
    /// Without either option this is just a wait.
    /// </summary>
    private static async Task<string?> WatchAsync(Task[] running, List<Direction> directions, BridgeOptions options,
        CancellationToken cancellationToken)
    {
        Task all = Task.WhenAll(running);
        if (options.IdleTimeout is null && (options.HalfCloseTimeout is null || running.Length < 2))
        {
            await all.ConfigureAwait(false);
            return null;
        }
        var clock = Stopwatch.StartNew();
        long lastBytes = 0;
        TimeSpan lastActivity = TimeSpan.Zero;
        TimeSpan? halfClosed = null;
        while (!all.IsCompleted)
        {
            TimeSpan now = clock.Elapsed;
            if (halfClosed is null && running.Length > 1 && running.Any(t => t.IsCompletedSuccessfully))
                halfClosed = now;
            long bytes = directions.Sum(d => d.Bytes);
            if (bytes != lastBytes) (lastBytes, lastActivity) = (bytes, now);

            TimeSpan wait = Timeout.InfiniteTimeSpan;
            if (options.HalfCloseTimeout is { } t && halfClosed is { } h)
            {
                if (now - h >= t)
                    return string.Create(CultureInfo.InvariantCulture, $"half-close timeout: the other direction did not end within {t.TotalSeconds:0.###} s (-t)");
                wait = h + t - now;
            }
            if (options.IdleTimeout is { } idle)
            {
                if (now - lastActivity >= idle)
                    return string.Create(CultureInfo.InvariantCulture, $"inactivity timeout: no data for {idle.TotalSeconds:0.###} s (-T)");
                TimeSpan check = Min(idle - (now - lastActivity), MaxIdleCheckInterval);
                wait = wait == Timeout.InfiniteTimeSpan ? check : Min(wait, check);
            }
            using var sleep = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            Task delay = Task.Delay(wait, sleep.Token);
            await Task.WhenAny(running.Where(r => !r.IsCompleted).Append(delay)).ConfigureAwait(false);
            sleep.Cancel();
            cancellationToken.ThrowIfCancellationRequested();
        }
        await all.ConfigureAwait(false);
        return null;
    }

    private static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : b;

    /// <summary>The -d -d notice at the end: bytes each way.</summary>
    private static string Summary(List<Direction> directions, BridgeOptions options, string? peer, TimeSpan elapsed)
    {
        long forward = options.Forward ? directions[0].Bytes : 0;
        long backward = options.Backward ? directions[^1].Bytes : 0;
        string seconds = elapsed.TotalSeconds.ToString("0.000", CultureInfo.InvariantCulture);
        if (peer is not null)
            return $"closed connection from {peer} after {seconds} s: {forward} bytes received, {backward} bytes sent";
        var parts = new List<string>(2);
        if (options.Forward) parts.Add($"{forward} bytes from {options.First}");
        if (options.Backward) parts.Add($"{backward} bytes from {options.Second}");
        return $"done after {seconds} s: {string.Join(", ", parts)}";
    }
}
