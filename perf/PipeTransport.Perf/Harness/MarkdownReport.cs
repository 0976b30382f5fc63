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
        var subject = result.Scenario.Variants[0];
        bool latency = result.Variants.Any(v => v.P50Micros.HasValue);
        string? secondary = scenario.SecondaryUnit;
        var text = new StringBuilder();
        text.AppendLine().AppendLine($"### {scenario.Name}: {scenario.Description}").AppendLine();
        text.Append($"| Variant | {scenario.Unit} (median) | min | max |");
        text.Append(latency ? " p50 µs | p99 µs |" : "");
        text.Append(secondary is null ? "" : $" {secondary} (median) |");
        text.AppendLine($" {subject.Name} ÷ this | target |");
        text.Append("|---|---:|---:|---:|");
        text.Append(latency ? "---:|---:|" : "");
        text.Append(secondary is null ? "" : "---:|");
        text.AppendLine("---:|---|");
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

            if (ReferenceEquals(variant.Variant, subject) || !result.HasSubject)
            {
                text.AppendLine(" — | |");
                continue;
            }

            string target = variant.Variant.TargetRatio is { } ratio
                ? Invariant($"{(scenario.HigherIsBetter ? "≥" : "≤")} {ratio:0.0#}× {(result.TargetMet(variant) == true ? "met" : "**missed**")}")
                : "";
            text.AppendLine(Invariant($" {result.Ratio(variant):0.00}× | {target} |"));
        }

        return text.ToString();
    }

    public static string Summary(IEnumerable<ScenarioResult> results)
    {
        var text = new StringBuilder();
        text.AppendLine().AppendLine($"Load average at the end: {LoadAverage()} (other processes on the machine add noise; runs alternate to spread it).");
        text.AppendLine().AppendLine("### Targets").AppendLine();
        text.AppendLine("| Scenario | Baseline | Ratio | Target | Result |").AppendLine("|---|---|---:|---|---|");
        foreach (var result in results.Where(r => r.HasSubject))
        {
            foreach (var variant in result.Variants.Skip(1).Where(v => v.Variant.TargetRatio.HasValue))
            {
                text.AppendLine(Invariant(
                    $"| {result.Scenario.Name} | {variant.Variant.Name} | {result.Ratio(variant):0.00}× | {(result.Scenario.HigherIsBetter ? "≥" : "≤")} {variant.Variant.TargetRatio:0.0#}× | {(result.TargetMet(variant) == true ? "met" : "**missed**")} |"));
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
