using System.Globalization;
using System.Text;
using PipeTransport.Perf.Kestrel;

namespace PipeTransport.Perf.Soak;

/// <summary>
/// Writes what a soak saw: <c>soak.csv</c> (one row a second), <c>soak-checkpoints.csv</c>,
/// <c>soak.png</c> and <c>soak-summary.md</c> in the output directory, and the summary on stdout.
/// Returns the exit code: 0 when the soak passed, 1 when it did not.
/// </summary>
internal static class SoakReport
{
    public sealed record Totals(
        long SteadyRequests, long ChurnRequests, long ChurnRuns, long CheckedResponses,
        long FifoTransfers, long FifoBytes, long FifoConversations, long ClientAborts, IReadOnlyDictionary<string, long> Chaos);

    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    public static int Write(SoakSettings settings, SoakLedger ledger, IReadOnlyList<ProcessSample> samples, IReadOnlyList<SoakCheckpoint> checkpoints,
        IReadOnlyList<FdLimitOutcome> periods, Totals totals)
    {
        string dir = settings.OutDirectory;
        WriteCsv(Path.Combine(dir, "soak.csv"), "seconds,phase,rss_bytes,fds,threads,gc_heap_bytes,heap_at_last_gc_bytes",
            samples.Select(s => string.Create(Inv, $"{s.Seconds:0.0},{s.Phase},{s.Rss},{s.Fds},{s.Threads},{s.GcHeap},{s.HeapAtLastGc}")));
        WriteCsv(Path.Combine(dir, "soak-checkpoints.csv"), "cycle,seconds,rss_bytes,fds,threads,live_heap_bytes,connections,fds_not_held_by_a_connection,pool_cached_bytes",
            checkpoints.Select(c => string.Create(Inv, $"{c.Cycle},{c.Seconds:0.0},{c.Rss},{c.Fds},{c.Threads},{c.LiveHeap},{c.Connections},{c.UnownedFds},{c.PoolCached}")));

        var failures = new List<string>();
        string plot = Path.Combine(dir, "soak.png");
        try
        {
            SoakPlot.Draw(plot, samples, checkpoints, periods, settings.FdLimit);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            failures.Add($"the plot could not be drawn: {SoakServer.OneLine(e.Message)}");
        }

        var md = new StringBuilder();
        md.AppendLine(Inv, $"## Soak: {settings.Duration.TotalMinutes:0.##} min, Kestrel `{(settings.Transport == KestrelTransports.Pipe ? "UsePipeTransport()" : "Sockets transport")}` + FIFO bridge under `prlimit --nofile={settings.FdLimit}:{settings.FdLimit}`");
        md.AppendLine();
        md.AppendLine(Inv, $"{checkpoints.Count} cycles ({SoakVerdict.WarmupCycles(checkpoints.Count)} warm-up), {periods.Count} fd-limit periods, {samples.Count} samples; load average at the end: {File.ReadAllText("/proc/loadavg").Trim()}.");
        md.AppendLine();

        var verdicts = SoakVerdict.Judge(checkpoints);
        md.AppendLine("| Series (checkpoints) | first third (median) | last third (median) | growth | allowed | result |");
        md.AppendLine("|---|---:|---:|---:|---:|---|");
        if (verdicts is null)
        {
            failures.Add("fewer than two checkpoints after the warm-up: too short to judge a drift (run at least one minute)");
        }
        else
        {
            foreach (var v in verdicts)
            {
                md.AppendLine(Inv, $"| {v.Name} | {v.Format(v.First)} | {v.Format(v.Last)} | {Math.Round(v.Growth * 100, 1):+0.0;-0.0;0.0}% | +{SoakSettings.MaxGrowth * 100:0}%{(v.Slack > 0 ? $" or +{v.Format(v.Slack)}" : "")} | {(v.Pass ? "pass" : "**FAIL**")} |");
                if (!v.Pass)
                {
                    failures.Add($"{v.Name} grew {v.Growth * 100:0.0}% ({v.Format(v.First)} → {v.Format(v.Last)})");
                }
            }
        }

        md.AppendLine();
        md.AppendLine("| What ran | |");
        md.AppendLine("|---|---|");
        md.AppendLine(Inv, $"| steady wrk, {settings.SteadyConnections} keep-alive connections, one run per cycle | {totals.SteadyRequests:N0} requests |");
        md.AppendLine(Inv, $"| churn wrk, {settings.ChurnConnections} connections, `Connection: close` on every {SoakSettings.ChurnCloseEvery}th request, {SoakSettings.ChurnRunSeconds} s runs back to back | {totals.ChurnRequests:N0} requests in {totals.ChurnRuns} runs |");
        md.AppendLine(Inv, $"| responses whose status and body wrk's script checked | {totals.CheckedResponses:N0} |");
        md.AppendLine(Inv, $"| FIFO bridge ({settings.FifoBytesPerSecond / (1 << 20):0} MiB/s, one {FifoFeeder.TransferSize >> 20} MiB transfer per conversation) | {totals.FifoTransfers:N0} transfers verified ({totals.FifoBytes / (double)(1L << 30):0.00} GiB, length and hash), {totals.FifoConversations:N0} conversations copied by the server |");
        foreach (var (name, count) in totals.Chaos.OrderBy(c => c.Key, StringComparer.Ordinal))
        {
            md.AppendLine(Inv, $"| chaos: {name} | {count:N0} |");
        }

        md.AppendLine(Inv, $"| requests the server's app saw end in a client's reset or abort | {totals.ClientAborts:N0} |");
        if (periods.Count > 0)
        {
            var recovered = periods.Where(p => p.RecoverySeconds is not null).Select(p => p.RecoverySeconds!.Value).ToArray();
            md.AppendLine(Inv, $"| fd-limit periods: peak server fds (of {settings.FdLimit}) | {periods.Min(p => p.PeakFds)}–{periods.Max(p => p.PeakFds)}, with {periods.Min(p => p.Opened)}–{periods.Max(p => p.Opened)} idle connections, held {SoakSettings.Hold.TotalSeconds:0} s |");
            md.AppendLine(Inv, $"| fd-limit periods: served a fresh connection again after the release | {recovered.Length} of {periods.Count}{(recovered.Length > 0 ? $", within {recovered.Max():0.00} s" : "")} |");
        }

        md.AppendLine();
        var errors = ledger.Snapshot();
        md.AppendLine("| Errors: source | kind | count | classified | first examples |");
        md.AppendLine("|---|---|---:|---|---|");
        foreach (var e in errors)
        {
            md.AppendLine(Inv, $"| {e.Source} | {e.Kind} | {e.Count:N0} | {(e.Expected ? "expected" : "**unexpected**")} | {Cell(string.Join(" / ", e.Examples))} |");
        }

        if (errors.Count == 0)
        {
            md.AppendLine("| none | | | | |");
        }

        long unexpected = ledger.UnexpectedCount;
        if (unexpected > 0)
        {
            failures.Add($"{unexpected} unexpected errors");
            md.AppendLine();
            md.AppendLine("First example of each unexpected error, in full:");
            md.AppendLine();
            foreach (var e in errors.Where(e => !e.Expected && e.Examples.Count > 0))
            {
                md.AppendLine(Inv, $"- {e.Source}, {e.Kind}: `{e.Examples[0].Replace("`", "'", StringComparison.Ordinal)}`");
            }
        }

        if (errors.FirstOrDefault(e => e.Source == "server" && e.Kind == "died") is { Examples.Count: > 0 } died)
        {
            // Everything after it (refused connections, failed wrk runs) follows from it.
            failures.Insert(0, $"the server process died ({died.Examples[0]})");
        }

        md.AppendLine();
        md.AppendLine(failures.Count == 0 ? "**Soak passed.**" : "**Soak FAILED:** " + string.Join("; ", failures) + ".");
        md.AppendLine();
        md.AppendLine($"Files: soak.csv (every second), soak-checkpoints.csv, soak.png, soak-summary.md in {Path.GetFullPath(dir)}.");
        File.WriteAllText(Path.Combine(dir, "soak-summary.md"), md.ToString());
        Console.Out.Write(md.ToString());
        Console.Out.Flush();
        return failures.Count == 0 ? 0 : 1;
    }

    private static string Cell(string text)
    {
        text = text.Replace("|", "\\|", StringComparison.Ordinal);
        return text.Length > 300 ? text[..300] + "…" : text;
    }

    private static void WriteCsv(string path, string header, IEnumerable<string> rows) =>
        File.WriteAllLines(path, rows.Prepend(header));
}
