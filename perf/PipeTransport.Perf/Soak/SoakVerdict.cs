namespace PipeTransport.Perf.Soak;

/// <summary>The drift of one series from the first third of the post-warm-up checkpoints to the last third.</summary>
/// <param name="Slack">Growth always allowed, in the series' unit, however small the series.</param>
internal sealed record SeriesVerdict(string Name, Func<double, string> Format, double First, double Last, double Slack = 0)
{
    public double Growth => First > 0 ? Last / First - 1 : 0;

    public bool Pass => Growth <= SoakSettings.MaxGrowth || Last - First <= Slack;
}

/// <summary>
/// The leak criterion. Checkpoints are taken at the same phase of every cycle, so the fd-limit periods
/// never count as drift. The first sixth of the cycles (at least one) is warm-up (JIT, pools, thread
/// pool settling); of the rest, the median of the last third may exceed the median of the first third
/// by at most <see cref="SoakSettings.MaxGrowth"/> for each series: RSS, the managed heap that survives
/// a full collection, the fds no connection accounts for, and threads. A leak grows with the work done,
/// so it grows from one third to the next; a median of several checkpoints keeps one noisy cycle from
/// deciding. A shrinking series passes. Threads may always grow by <see cref="ThreadSlack"/>: the thread
/// pool adds and retires threads one at a time, and 10% of 18 threads is less than two.
/// </summary>
internal static class SoakVerdict
{
    /// <summary>Threads a series may always grow by (see the class summary).</summary>
    public const int ThreadSlack = 2;

    public static int WarmupCycles(int checkpoints) => Math.Max(1, (checkpoints + 5) / 6);

    /// <summary>Null when fewer than two checkpoints follow the warm-up: too short to see a drift.</summary>
    public static IReadOnlyList<SeriesVerdict>? Judge(IReadOnlyList<SoakCheckpoint> checkpoints)
    {
        var judged = checkpoints.Skip(WarmupCycles(checkpoints.Count)).ToArray();
        if (judged.Length < 2)
        {
            return null;
        }

        int third = Math.Max(1, judged.Length / 3);
        var first = judged.Take(third).ToArray();
        var last = judged.TakeLast(third).ToArray();
        SeriesVerdict Series(string name, Func<SoakCheckpoint, double> value, Func<double, string> format, double slack = 0) =>
            new(name, format, Median(first.Select(value)), Median(last.Select(value)), slack);
        return
        [
            Series("RSS", c => c.Rss, Mib),
            Series("managed heap after a full GC", c => c.LiveHeap, Mib),
            Series("fds not held by a connection", c => c.UnownedFds, Count),
            Series("threads", c => c.Threads, Count, ThreadSlack),
        ];
    }

    public static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length == 0 ? 0 : sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    public static string Mib(double bytes) => (bytes / (1 << 20)).ToString("0.0", System.Globalization.CultureInfo.InvariantCulture) + " MiB";

    public static string Count(double value) => value.ToString("0.#", System.Globalization.CultureInfo.InvariantCulture);
}
