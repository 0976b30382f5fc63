using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;

namespace PipeTransport.Perf.Harness;

/// <summary>Renders scenario results as markdown tables, ready to paste into a README.</summary>
internal static class MarkdownReport
{
    public static string Header(PerfSettings settings, string commandLine)
    {
        var text = new StringBuilder();
        text.AppendLine($"`{commandLine}`").AppendLine();
        string pipe = settings.PipeSize > 0 ? ByteSize.Format(settings.PipeSize) : "kernel default (64 KiB)";
        string warmup = settings.Warmup ? "after one untimed warm-up run each" : "no warm-up";
        text.AppendLine(Invariant($"Machine: {CpuModel()}, {Environment.ProcessorCount} CPU(s) usable by this process, Linux {Environment.OSVersion.Version}, {RuntimeInformation.FrameworkDescription}, load average at start {LoadAverage()}."));
        text.AppendLine(Invariant($"Size {ByteSize.Format(settings.Size)} per run, {settings.Runs} timed runs per variant alternating between variants ({warmup}), buffer {ByteSize.Format(settings.BufferSize)}, pipe size {pipe}."));
        return text.ToString();
    }

    public static string Table(ScenarioResult result)
    {
        var scenario = result.Scenario;
        var subjects = scenario.Variants.Take(scenario.SubjectCount).ToArray();
        bool latency = result.Variants.Any(v => v.P50Micros.HasValue);
        string? secondary = scenario.SecondaryUnit;
        var text = new StringBuilder();
        text.AppendLine().AppendLine($"### {scenario.Name}: {scenario.Description}").AppendLine();
        text.Append($"| Variant | {scenario.Unit} (median) | min | max |");
        text.Append(latency ? " p50 µs | p99 µs |" : "");
        text.Append(secondary is null ? "" : $" {secondary} (median) |");
        text.AppendLine(string.Concat(subjects.Select(s => $" {s.Name} ÷ this |")) + " target |");
        text.Append("|---|---:|---:|---:|");
        text.Append(latency ? "---:|---:|" : "");
        text.Append(secondary is null ? "" : "---:|");
        text.AppendLine(string.Concat(subjects.Select(_ => "---:|")) + "---|");
        var ran = result.Subjects;
        foreach (var variant in result.Variants)
        {
            text.Append(Invariant($"| {variant.Variant.Name} | {Number(variant.Median)} | {Number(variant.Min)} | {Number(variant.Max)} |"));
            if (latency)
            {
                text.Append(Invariant($" {Micros(variant.P50Micros)} | {Micros(variant.P99Micros)} |"));
            }

            if (secondary is not null)
            {
                text.Append(variant.Secondary is { } value ? $" {Number(value)} |" : " |");
            }

            var targets = new List<string>();
            for (int i = 0; i < subjects.Length; i++)
            {
                var subject = ran.FirstOrDefault(s => s.Index == i).Stats;
                if (subject is null || result.IsSubject(variant))
                {
                    text.Append(" — |");
                    continue;
                }

                text.Append(Invariant($" {ScenarioResult.Ratio(subject, variant):0.00}× |"));
                if (variant.Variant.TargetFor(i) is { } ratio)
                {
                    string label = subjects.Length > 1 ? subjects[i].Name + " " : "";
                    targets.Add(Invariant($"{label}{(scenario.HigherIsBetter ? "≥" : "≤")} {ratio:0.0#}× {(result.TargetMet(i, subject, variant) == true ? "met" : "**missed**")}"));
                }
            }

            text.AppendLine($" {string.Join("; ", targets)} |");
        }

        return text.ToString();
    }

    public static string Summary(IEnumerable<ScenarioResult> results)
    {
        var text = new StringBuilder();
        text.AppendLine().AppendLine($"Load average at the end: {LoadAverage()} (other processes on the machine add noise; runs alternate to spread it).");
        text.AppendLine().AppendLine("### Targets").AppendLine();
        text.AppendLine("| Scenario | Subject | Baseline | Ratio | Target | Result |").AppendLine("|---|---|---|---:|---|---|");
        foreach (var result in results)
        {
            foreach (var (index, subject) in result.Subjects)
            {
                foreach (var variant in result.Variants.Where(v => !result.IsSubject(v) && v.Variant.TargetFor(index).HasValue))
                {
                    text.AppendLine(Invariant(
                        $"| {result.Scenario.Name} | {subject.Variant.Name} | {variant.Variant.Name} | {ScenarioResult.Ratio(subject, variant):0.00}× | {(result.Scenario.HigherIsBetter ? "≥" : "≤")} {variant.Variant.TargetFor(index):0.0#}× | {(result.TargetMet(index, subject, variant) == true ? "met" : "**missed**")} |"));
                }
            }
        }

        return text.ToString();
    }

    private static string Number(double value) => value switch
    {
        >= 1000 => value.ToString("N0", CultureInfo.InvariantCulture),
        >= 100 => value.ToString("0.0", CultureInfo.InvariantCulture),
        _ => value.ToString("0.00", CultureInfo.InvariantCulture),
    };

    private static string Micros(double? value) => value is { } v ? v.ToString("0.0", CultureInfo.InvariantCulture) : "";

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);

    private static string LoadAverage()
    {
        try
        {
            return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3));
        }
        catch (IOException)
        {
            return "unknown";
        }
    }

    private static string CpuModel()
    {
        try
        {
            string? line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
            return line is null ? "unknown CPU" : line[(line.IndexOf(':') + 1)..].Trim();
        }
        catch (IOException)
        {
            return "unknown CPU";
        }
    }
}
