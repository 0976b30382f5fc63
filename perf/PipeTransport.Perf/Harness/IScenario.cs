namespace PipeTransport.Perf.Harness;

/// <summary>A job measured side by side: the subject and its baselines.</summary>
internal interface IScenario
{
    /// <summary>Name on the command line, e.g. <c>fifo-read</c>.</summary>
    string Name { get; }

    /// <summary>One line describing what is measured.</summary>
    string Description { get; }

    /// <summary>Unit of <see cref="Sample.Value"/>, e.g. <c>GiB/s</c>.</summary>
    string Unit { get; }

    /// <summary>Whether a larger value is better (throughput) or worse (memory).</summary>
    bool HigherIsBetter { get; }

    /// <summary>What <see cref="Sample.Secondary"/> measures, shown as an extra column; null when the scenario has none.</summary>
    string? SecondaryUnit => null;

    /// <summary>
    /// How many of the first <see cref="Variants"/> are subjects (PipeTransport); 1 unless a scenario
    /// compares several of its own variants (e.g. two engines) with the same baselines.
    /// </summary>
    int SubjectCount => 1;

    /// <summary>The subject(s) first, then the baselines.</summary>
    IReadOnlyList<Variant> Variants { get; }
}
