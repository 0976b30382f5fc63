using System.Globalization;

namespace PipeTransport.Perf.Harness;

/// <summary>
/// Runs a scenario's variants alternately (A, B, C, A, B, C, ...) so that drift in the machine's state
/// (page cache, CPU frequency, a neighbour's load) spreads over all variants instead of biasing one.
/// Progress goes to stderr; the markdown report to stdout.
/// </summary>
internal static class ScenarioRunner
{
    public static async Task<ScenarioResult> RunAsync(IScenario scenario, PerfSettings settings, string workDirectory)
    {
        var stats = scenario.Variants
            .Where(v => settings.Extra || !v.Extra)
            .Where(v => settings.VariantFilter.Count == 0 || settings.VariantFilter.Any(f => v.Name.Contains(f, StringComparison.OrdinalIgnoreCase)))
            .Where(v => v.Unavailable?.Invoke() is not { } reason || Skip(scenario, v, reason))
            .Select(v => new VariantStats(v))
            .ToArray();
        if (settings.Warmup)
        {
            foreach (var variant in stats)
            {
                // A warm-up of the full round-trip count: with 2,000 (60 ms), PipeTransport's own code
                // (not precompiled, unlike the framework's sockets) still ran tier-0 and instrumented
                // code in the first timed runs when pinned to one CPU (perf record, session 5).
                var sample = await RunOnceAsync(variant.Variant, settings, settings.WarmupSize,
                    settings.RoundTrips, workDirectory, isWarmup: true);
                Log($"{scenario.Name} warm-up  {variant.Variant.Name}: {Format(sample, scenario.Unit)}");
            }
        }

        for (int run = 1; run <= settings.Runs; run++)
        {
            foreach (var variant in stats)
            {
                var sample = await RunOnceAsync(variant.Variant, settings, settings.Size, settings.RoundTrips, workDirectory, isWarmup: false);
                variant.Samples.Add(sample);
                Log($"{scenario.Name} run {run}/{settings.Runs} {variant.Variant.Name}: {Format(sample, scenario.Unit)}");
            }
        }

        if (scenario is IAsyncDisposable disposable)
        {
            await disposable.DisposeAsync(); // e.g. server processes kept up across the runs
        }

        return new ScenarioResult(scenario, stats);
    }

    private static async Task<Sample> RunOnceAsync(Variant variant, PerfSettings settings, long size, int roundTrips, string workDirectory, bool isWarmup)
    {
        using var timeout = new CancellationTokenSource(settings.Timeout);
        var context = new RunContext(settings, size, roundTrips, workDirectory, isWarmup, timeout.Token);
        try
        {
            return await variant.RunAsync(context);
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested)
        {
            throw new TimeoutException($"'{variant.Name}' did not finish within {settings.Timeout}");
        }
    }

    private static string Format(Sample sample, string unit)
    {
        string text = sample.Value.ToString("0.###", CultureInfo.InvariantCulture) + " " + unit;
        if (sample.P50Micros is { } p50 && sample.P99Micros is { } p99)
        {
            text += string.Create(CultureInfo.InvariantCulture, $" (p50 {p50:0.0} µs, p99 {p99:0.0} µs)");
        }

        return sample.Secondary is { } secondary ? text + string.Create(CultureInfo.InvariantCulture, $" (secondary {secondary:0.##})") : text;
    }

    private static bool Skip(IScenario scenario, Variant variant, string reason)
    {
        Log($"{scenario.Name} skips '{variant.Name}': {reason}");
        return false;
    }

    private static void Log(string line) => Console.Error.WriteLine(line);
}
