namespace PipeTransport.Perf.Harness;

/// <summary>All samples of one scenario; <see cref="Variants"/>[0] is the subject unless <c>--variant</c> left it out.</summary>
internal sealed record ScenarioResult(IScenario Scenario, IReadOnlyList<VariantStats> Variants)
{
    /// <summary>Whether the subject ran, so that ratios mean something.</summary>
    public bool HasSubject => Variants.Count > 0 && ReferenceEquals(Variants[0].Variant, Scenario.Variants[0]);

    /// <summary>Subject ÷ baseline of the medians (NaN without the subject).</summary>
    public double Ratio(VariantStats baseline) => HasSubject ? Variants[0].Median / baseline.Median : double.NaN;

    /// <summary>Whether the subject reaches the baseline's target ratio (null when there is none).</summary>
    public bool? TargetMet(VariantStats baseline) => baseline.Variant.TargetRatio is not { } target || !HasSubject
        ? null
        : Scenario.HigherIsBetter ? Ratio(baseline) >= target : Ratio(baseline) <= target;
}
