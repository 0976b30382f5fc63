using System.Diagnostics;
using System.Net.Sockets;

namespace PipeTransport.Perf.Soak;

/// <summary>What one fd-limit period did.</summary>
/// <param name="Start">Seconds since the soak started, when filling began.</param>
/// <param name="Released">When the idle connections were closed.</param>
/// <param name="End">When a fresh connection was served again (or the recovery deadline passed).</param>
/// <param name="Opened">Idle connections the harness opened.</param>
/// <param name="PeakFds">Most fds the server held during the period.</param>
/// <param name="RecoverySeconds">From release to the first fresh connection served, or null if none was within the deadline.</param>
internal sealed record FdLimitOutcome(double Start, double Released, double End, int Opened, int PeakFds, double? RecoverySeconds);

/// <summary>
/// One period at the fd limit: open idle connections to the server (no request) until its fd table is
/// full (it holds the limit, or it stops taking connections: the rest wait in the backlog), hold them,
/// close them, and then ask on fresh connections until one is served: a server that died or stopped
/// accepting fails here.
/// </summary>
internal static class FdLimitPeriod
{
    private const int Batch = 32;
    private static readonly TimeSpan s_connectTimeout = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan s_probeTimeout = TimeSpan.FromSeconds(2);

    /// <summary>Batches in a row that did not raise the server's fd count: it takes no more.</summary>
    private const int StalledBatches = 3;

    public static async Task<FdLimitOutcome> RunAsync(SoakServerProcess server, int fdLimit, SoakLedger ledger, Action<string> setPhase,
        TimeSpan maxFill, DateTimeOffset releaseAt, TimeSpan recoveryTimeout)
    {
        ledger.OpenFdLimitWindow();
        setPhase(SoakPhase.Fill);
        double start = ledger.Now;
        var sockets = new List<Socket>();
        int peak = Math.Max(0, ProcessSampler.Fds(server.Pid));
        try
        {
            var filling = Stopwatch.StartNew();
            int stalled = 0;
            // Bounded: the limit plus a full backlog is more than the server can ever take.
            while (peak < fdLimit && stalled < StalledBatches && filling.Elapsed < maxFill && sockets.Count < 2 * fdLimit + 512)
            {
                using var timeout = new CancellationTokenSource(s_connectTimeout);
                var batch = await Task.WhenAll(Enumerable.Range(0, Batch).Select(async _ =>
                {
                    try
                    {
                        return await SoakHttp.ConnectAsync(server.Port, timeout.Token);
                    }
                    catch (Exception e) when (e is SocketException or OperationCanceledException)
                    {
                        return null; // the backlog is full: the server is as full as it gets
                    }
                }));
                sockets.AddRange(batch.OfType<Socket>());
                await Task.Delay(20); // let the accept loop catch up before counting
                int fds = ProcessSampler.Fds(server.Pid);
                stalled = fds > peak ? 0 : stalled + 1;
                peak = Math.Max(peak, fds);
                if (batch.Any(s => s is null) || fds < 0)
                {
                    break;
                }
            }

            setPhase(SoakPhase.Hold);
            while (DateTimeOffset.UtcNow < releaseAt)
            {
                peak = Math.Max(peak, ProcessSampler.Fds(server.Pid));
                await Task.Delay(100);
            }
        }
        finally
        {
            foreach (var socket in sockets)
            {
                socket.Dispose();
            }
        }

        setPhase(SoakPhase.Recover);
        double released = ledger.Now;
        double? recovery = null;
        var deadline = Stopwatch.StartNew();
        string? lastError = null;
        while (deadline.Elapsed < recoveryTimeout && server.Exit is null)
        {
            using var timeout = new CancellationTokenSource(s_probeTimeout);
            try
            {
                await SoakHttp.PlaintextAsync(server.Port, halfClose: false, timeout.Token);
                recovery = ledger.Now - released;
                break;
            }
            catch (Exception e) when (e is SocketException or IOException or OperationCanceledException or SoakCheckException)
            {
                lastError = SoakServer.OneLine(e.Message);
                await Task.Delay(100);
            }
        }

        if (recovery is null && server.Exit is null)
        {
            ledger.Unexpected("fd-limit period", $"no fresh connection served within {recoveryTimeout.TotalSeconds:0} s of the release",
                $"peak {peak} fds of {fdLimit}; last try: {lastError}");
        }

        ledger.CloseFdLimitWindow();
        return new FdLimitOutcome(start, released, ledger.Now, sockets.Count, peak, recovery);
    }
}
