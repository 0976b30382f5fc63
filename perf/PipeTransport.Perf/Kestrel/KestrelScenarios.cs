using PipeTransport.Perf.Harness;

namespace PipeTransport.Perf.Kestrel;

/// <summary>The <c>kestrel</c> group (issue 4): wrk at 32 and 256 connections for both responses, then idle memory.</summary>
internal static class KestrelScenarios
{
    public static readonly IReadOnlyList<IScenario> All =
    [
        new KestrelWrkScenario("/plaintext", 32),
        new KestrelWrkScenario("/plaintext", 256),
        new KestrelWrkScenario("/64k", 32),
        new KestrelWrkScenario("/64k", 256),
        new KestrelIdleScenario(),
    ];
}
