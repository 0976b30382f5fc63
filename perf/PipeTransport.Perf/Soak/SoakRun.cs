using System.Collections.Concurrent;
using System.Globalization;
using PipeTransport.Perf.Harness;

namespace PipeTransport.Perf.Soak;

/// <summary>
/// The soak: one <c>soak-server</c> child (Kestrel with <c>UsePipeTransport()</c> and the FIFO bridge,
/// under <c>prlimit --nofile</c>) is the only process sampled; everything that loads it runs outside it,
/// all at once: a steady keep-alive wrk load, churning wrk runs back to back, the FIFO stream, the chaos
/// mix, and once per cycle a period at the fd limit. Every second the server's RSS, fds, threads and
/// managed heap go to a CSV; each cycle ends its normal phase with a checkpoint that
/// <see cref="SoakVerdict"/> judges.
/// </summary>
internal sealed class SoakRun
{
    private readonly SoakSettings _settings;
    private readonly SoakLedger _ledger = new();
    private readonly ConcurrentQueue<ProcessSample> _samples = new();
    private readonly List<SoakCheckpoint> _checkpoints = [];
    private readonly List<FdLimitOutcome> _periods = [];
    private volatile string _phase = SoakPhase.Normal;
    private long _steadyRequests;
    private long _churnRequests;
    private long _churnRuns;
    private long _checkedResponses;

    private SoakRun(SoakSettings settings) => _settings = settings;

    public static Task<int> RunAsync(SoakSettings settings) => new SoakRun(settings).RunAsync();

    private async Task<int> RunAsync()
    {
        foreach (string tool in new[] { "wrk", "prlimit" })
        {
            if (!(Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Any(d => File.Exists(Path.Combine(d, tool))))
            {
                Console.Error.WriteLine($"soak: {tool} is not installed (apt-get install {(tool == "wrk" ? "wrk" : "util-linux")})");
                return 2;
            }
        }

        Directory.CreateDirectory(_settings.OutDirectory);
        var work = Directory.CreateTempSubdirectory("ptsoak-").FullName;
        try
        {
            return await RunInAsync(work);
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    private async Task<int> RunInAsync(string work)
    {
        string fifoIn = Path.Combine(work, "in.fifo");
        string fifoOut = Path.Combine(work, "out.fifo");
        Fifo.Create(fifoIn);
        Fifo.Create(fifoOut);
        string script = SoakWrk.WriteScript(work);
        int limit = _settings.FdLimit;
        Log($"soak: {_settings.Duration.TotalMinutes:0.##} min, server under prlimit --nofile={limit}:{limit}, output in {Path.GetFullPath(_settings.OutDirectory)}");

        SoakServerProcess server;
        using (var startup = new CancellationTokenSource(TimeSpan.FromSeconds(60)))
        {
            server = await SoakServerProcess.StartAsync(_settings.Transport, limit, fifoIn, fifoOut, _ledger, startup.Token);
        }

        var feeder = new FifoFeeder(fifoIn, fifoOut, server, _ledger, _settings.FifoBytesPerSecond);
        var chaos = new SoakChaos(server.Port, _ledger);
        await using (server)
        {
            using var stop = new CancellationTokenSource();
            feeder.Start();
            var sampler = SampleAsync(server, stop.Token);
            var churn = ChurnAsync(server.Port, script, stop.Token);
            var chaotic = chaos.RunAsync(stop.Token);
            try
            {
                await CyclesAsync(server, feeder, script);
            }
            finally
            {
                await stop.CancelAsync();
                await Task.WhenAll(chaotic, churn);
                await feeder.StopAsync();
                await sampler;
            }
        }

        return SoakReport.Write(_settings, _ledger, _samples.ToArray(), _checkpoints, _periods, new SoakReport.Totals(
            Interlocked.Read(ref _steadyRequests), Interlocked.Read(ref _churnRequests), Interlocked.Read(ref _churnRuns),
            Interlocked.Read(ref _checkedResponses), feeder.VerifiedTransfers, feeder.VerifiedBytes, server.FifoConversations,
            server.ClientAborts, chaos.Done));
    }

    private async Task CyclesAsync(SoakServerProcess server, FifoFeeder feeder, string script)
    {
        long verified = 0;
        for (int cycle = 1; server.Exit is null; cycle++)
        {
            var cycleStart = DateTimeOffset.UtcNow;
            _phase = SoakPhase.Normal;
            int steadySeconds = (int)SoakSettings.CycleLength.TotalSeconds;
            var steady = SoakWrk.RunAsync(script, server.Port, _settings.SteadyConnections, steadySeconds, timeoutSeconds: 10, closeEvery: 0);
            await Task.Delay(SoakSettings.Normal);
            if (server.Exit is not null)
            {
                await CountSteadyAsync(steady);
                break;
            }

            var checkpoint = await CheckpointAsync(server, cycle);
            if (feeder.VerifiedTransfers == verified)
            {
                _ledger.Unexpected("FIFO bridge", "no transfer verified during a cycle", $"cycle {cycle}");
            }

            verified = feeder.VerifiedTransfers;
            var period = await FdLimitPeriod.RunAsync(server, _settings.FdLimit, _ledger, p => _phase = p,
                SoakSettings.MaxFill, cycleStart + SoakSettings.CycleLength, SoakSettings.RecoveryTimeout);
            _periods.Add(period);
            await CountSteadyAsync(steady);
            _phase = SoakPhase.Normal;
            string seen = checkpoint is null ? "no checkpoint" : FormattableString.Invariant(
                $"RSS {SoakVerdict.Mib(checkpoint.Rss)}, fds {checkpoint.Fds} ({checkpoint.UnownedFds} not held by a connection), threads {checkpoint.Threads}, heap after a full GC {SoakVerdict.Mib(checkpoint.LiveHeap)} ({SoakVerdict.Mib(checkpoint.PoolCached)} of it cached by the pool)");
            string recovered = period.RecoverySeconds is { } r ? FormattableString.Invariant($"served again {r:0.00} s after the release") : "NOT served again";
            Log(FormattableString.Invariant(
                $"cycle {cycle} t={_ledger.Now:0}s: {seen}; fd limit: peak {period.PeakFds}/{_settings.FdLimit} fds with {period.Opened} idle connections, {recovered}; FIFO {feeder.VerifiedTransfers} transfers verified; {_ledger.UnexpectedCount} unexpected errors"));
            if (_ledger.Now + SoakSettings.CycleLength.TotalSeconds > _settings.Duration.TotalSeconds)
            {
                break;
            }
        }
    }

    private async Task<SoakCheckpoint?> CheckpointAsync(SoakServerProcess server, int cycle)
    {
        double now = _ledger.Now;
        var window = _samples.Where(s => s.Seconds > now - SoakSettings.CheckpointWindow.TotalSeconds).ToArray();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        try
        {
            var seen = await server.CheckpointAsync(timeout.Token);
            var checkpoint = new SoakCheckpoint(cycle, now,
                (long)SoakVerdict.Median(window.Select(s => (double)s.Rss)),
                (int)SoakVerdict.Median(window.Select(s => (double)s.Fds)),
                (int)SoakVerdict.Median(window.Select(s => (double)s.Threads)),
                seen.LiveHeap, seen.Connections, seen.UnownedFds, seen.PoolCached);
            _checkpoints.Add(checkpoint);
            return checkpoint;
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or InvalidOperationException)
        {
            _ledger.Unexpected("checkpoint", "the server did not answer", $"cycle {cycle}: {SoakServer.OneLine(e.Message)}");
            return null;
        }
    }

    private async Task CountSteadyAsync(Task<WrkOutcome> steady)
    {
        try
        {
            var outcome = await steady;
            Interlocked.Add(ref _steadyRequests, outcome.Requests);
            Interlocked.Add(ref _checkedResponses, outcome.Checked);
            // Keep-alive connections the server already holds must be served, at the fd limit too.
            CountWrk("steady wrk (keep-alive)", outcome, _ => false);
        }
        catch (InvalidOperationException e)
        {
            _ledger.Unexpected("steady wrk (keep-alive)", "wrk failed", e.Message);
        }
    }

    private async Task ChurnAsync(int port, string script, CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            double started = _ledger.Now;
            try
            {
                var outcome = await SoakWrk.RunAsync(script, port, _settings.ChurnConnections, SoakSettings.ChurnRunSeconds, timeoutSeconds: 3, SoakSettings.ChurnCloseEvery);
                Interlocked.Add(ref _churnRequests, outcome.Requests);
                Interlocked.Add(ref _checkedResponses, outcome.Checked);
                Interlocked.Increment(ref _churnRuns);
                // New connections wait in the backlog, time out or are reset while the server is at its limit.
                CountWrk("churn wrk (Connection: close)", outcome, _ => _ledger.DuringFdLimit(started, _ledger.Now));
            }
            catch (InvalidOperationException e)
            {
                _ledger.Unexpected("churn wrk (Connection: close)", "wrk failed", e.Message);
            }
        }
    }

    private void CountWrk(string source, WrkOutcome outcome, Func<string, bool> expectedSocketError)
    {
        _ledger.Unexpected(source, "wrong body", count: outcome.BadBodies);
        _ledger.Unexpected(source, "HTTP status >= 400", count: outcome.Status);
        foreach (var (kind, count) in new[] { ("connect error", outcome.Connect), ("read error", outcome.Read), ("write error", outcome.Write), ("timeout", outcome.Timeout) })
        {
            _ledger.Add(source, kind, expectedSocketError(kind), count, null);
        }
    }

    private async Task SampleAsync(SoakServerProcess server, CancellationToken stop)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
        try
        {
            while (await timer.WaitForNextTickAsync(stop))
            {
                if (ProcessSampler.Read(server.Pid) is not { } s)
                {
                    return;
                }

                _samples.Enqueue(new ProcessSample(_ledger.Now, _phase, s.Rss, s.Fds, s.Threads, server.GcHeap, server.HeapAtLastGc));
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private static void Log(string line) => Console.Error.WriteLine(line);
}
