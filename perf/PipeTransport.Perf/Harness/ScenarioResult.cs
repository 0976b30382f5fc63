namespace PipeTransport.Perf.Harness;

/// <summary>All samples of one scenario; <see cref="Variants"/>[0] is the subject.</summary>
internal sealed record ScenarioResult(IScenario Scenario, IReadOnlyList<VariantStats> Variants)
{
    /// <summary>Subject ÷ baseline of the medians.</summary>
    public double Ratio(VariantStats baseline) => Variants[0].Median / baseline.Median;

    /// <summary>Whether the subject reaches the baseline's target ratio (null when there is none).</summary>
    public bool? TargetMet(VariantStats baseline) => baseline.Variant.TargetRatio is not { } target
        ? null
        : Scenario.HigherIsBetter ? Ratio(baseline) >= target : Ratio(baseline) <= target;
}
