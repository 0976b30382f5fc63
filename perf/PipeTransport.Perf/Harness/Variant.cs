namespace PipeTransport.Perf.Harness;

/// <summary>
/// One way of doing a scenario's job. The first variant of a scenario is the subject (PipeTransport);
/// the others are baselines, each with the ratio the subject should reach against it.
/// </summary>
/// <param name="Name">Shown in the table.</param>
/// <param name="RunAsync">Does one run of the given size and returns its sample; throws on an integrity failure.</param>
/// <param name="TargetRatio">Subject ÷ this variant that the issue asks for (null for the subject itself or when there is none).</param>
/// <param name="Extra">A tuning variant of the subject, run only with <c>--extra</c> (for analysis, not a baseline).</param>
/// <param name="Targets">
/// For scenarios with several subjects (<see cref="IScenario.SubjectCount"/>): the target of each
/// subject against this baseline, in subject order (null entries: no target). Overrides <paramref name="TargetRatio"/>.
/// </param>
/// <param name="Unavailable">
/// Why this variant cannot run on this machine (null: it can), asked once before the runs; an
/// unavailable variant is left out of the table with its reason on stderr (e.g. no C compiler).
/// </param>
internal sealed record Variant(string Name, Func<RunContext, Task<Sample>> RunAsync, double? TargetRatio = null, bool Extra = false,
    IReadOnlyList<double?>? Targets = null, Func<string?>? Unavailable = null)
{
    /// <summary>The ratio subject number <paramref name="subject"/> should reach against this variant, if any.</summary>
    public double? TargetFor(int subject) => Targets is { } targets
        ? subject < targets.Count ? targets[subject] : null
        : subject == 0 ? TargetRatio : null;
}
