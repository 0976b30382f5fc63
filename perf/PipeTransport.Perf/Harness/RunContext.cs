namespace PipeTransport.Perf.Harness;

/// <summary>What a variant gets for one run.</summary>
/// <param name="Settings">The command line's settings.</param>
/// <param name="Size">Bytes to move in this run (smaller for the warm-up).</param>
/// <param name="RoundTrips">Round trips in this run (fewer for the warm-up).</param>
/// <param name="WorkDirectory">A private directory for FIFOs and socket files, removed at exit.</param>
/// <param name="IsWarmup">Whether this is the untimed warm-up run (scenarios may do less work).</param>
/// <param name="CancellationToken">Fires when the run exceeds its timeout.</param>
internal sealed record RunContext(PerfSettings Settings, long Size, int RoundTrips, string WorkDirectory, bool IsWarmup, CancellationToken CancellationToken);
