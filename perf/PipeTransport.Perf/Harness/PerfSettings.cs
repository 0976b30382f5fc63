namespace PipeTransport.Perf.Harness;

/// <summary>What one harness invocation measures, from the command line.</summary>
/// <param name="Size">Bytes moved per throughput run.</param>
/// <param name="Runs">Timed runs per variant (alternated A, B, C, A, B, C, ...).</param>
/// <param name="BufferSize">Read and write buffer size of every variant (and of the writer process).</param>
/// <param name="PipeSize">F_SETPIPE_SZ for every FIFO, or 0 to keep the kernel default (64 KiB).</param>
/// <param name="RoundTrips">Ping-pong round trips per run.</param>
/// <param name="Connections">Idle connections per idle-memory run.</param>
/// <param name="Warmup">Whether each variant runs once, untimed, before the timed runs.</param>
/// <param name="Timeout">Upper bound for one run; a run that takes longer fails the scenario.</param>
/// <param name="VariantFilter">When not empty, only variants whose name contains one of these (for profiling one variant).</param>
/// <param name="Extra">Also run the subject's tuning variants (e.g. inline application scheduling).</param>
/// <param name="BridgeBlockSize">pipebridge's <c>-b</c> in the bridge scenarios, or 0 for its default.</param>
internal sealed record PerfSettings(
    long Size,
    int Runs,
    int BufferSize,
    int PipeSize,
    int RoundTrips,
    int Connections,
    bool Warmup,
    TimeSpan Timeout,
    IReadOnlyList<string> VariantFilter,
    bool Extra,
    int BridgeBlockSize = 0)
{
    public const int Seed = 20261127;

    /// <summary>Seconds of one timed <c>wrk</c> run (Kestrel scenarios).</summary>
    public int WrkSeconds { get; init; } = 5;

    /// <summary>
    /// Default of <see cref="WrkWarmupSeconds"/>: both servers keep speeding up through their first seconds
    /// under load (tiered compilation, pools and thread counts settling), most visibly pinned to one CPU; a
    /// shorter warm-up puts a server that is still warming into the median. perf/README.md has the measurement.
    /// </summary>
    public const int DefaultWrkWarmupSeconds = 15;

    /// <summary>Seconds of the untimed warm-up <c>wrk</c> run each Kestrel server gets before its timed runs.</summary>
    public int WrkWarmupSeconds { get; init; } = DefaultWrkWarmupSeconds;

    /// <summary>Warm-up runs move less data: they only have to get every path jitted.</summary>
    public long WarmupSize => Math.Min(Size, 64L << 20);
}
