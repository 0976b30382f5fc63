namespace PipeTransport.Perf.Harness;

/// <summary>
/// All samples of one scenario; the scenario's subject variants come first (<see cref="IScenario.SubjectCount"/>,
/// usually one), unless <c>--variant</c> left some out.
/// </summary>
internal sealed record ScenarioResult(IScenario Scenario, IReadOnlyList<VariantStats> Variants)
{
    /// <summary>Whether the (first) subject ran, so that ratios mean something.</summary>
    public bool HasSubject => Variants.Count > 0 && ReferenceEquals(Variants[0].Variant, Scenario.Variants[0]);

    /// <summary>The subjects that ran, each with its index among the scenario's subjects.</summary>
    public IReadOnlyList<(int Index, VariantStats Stats)> Subjects =>
        Variants.Select(v => (Index: IndexOfSubject(v), Stats: v)).Where(s => s.Index >= 0).ToArray();

    /// <summary>Whether <paramref name="variant"/> is one of the scenario's subjects.</summary>
    public bool IsSubject(VariantStats variant) => IndexOfSubject(variant) >= 0;

    /// <summary>First subject ÷ baseline of the medians (NaN without the subject).</summary>
    public double Ratio(VariantStats baseline) => HasSubject ? Variants[0].Median / baseline.Median : double.NaN;

    /// <summary>Subject ÷ baseline of the medians.</summary>
    public static double Ratio(VariantStats subject, VariantStats baseline) => subject.Median / baseline.Median;

    /// <summary>Whether the first subject reaches the baseline's target ratio (null when there is none).</summary>
    public bool? TargetMet(VariantStats baseline) =>
        HasSubject ? TargetMet(0, Variants[0], baseline) : null;

    /// <summary>Whether subject number <paramref name="index"/> reaches its target against the baseline (null when there is none).</summary>
    public bool? TargetMet(int index, VariantStats subject, VariantStats baseline) => baseline.Variant.TargetFor(index) is not { } target
        ? null
        : Scenario.HigherIsBetter ? Ratio(subject, baseline) >= target : Ratio(subject, baseline) <= target;

    private int IndexOfSubject(VariantStats variant)
    {
        for (int i = 0; i < Scenario.SubjectCount && i < Scenario.Variants.Count; i++)
        {
            if (ReferenceEquals(Scenario.Variants[i], variant.Variant))
            {
                return i;
            }
        }

        return -1;
    }
}
