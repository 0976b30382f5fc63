namespace PipeTransport.Perf.Soak;

/// <summary>What one soak run does, from the command line (<c>soak --help</c>).</summary>
/// <param name="Duration">How long the cycles run.</param>
/// <param name="OutDirectory">Where the CSVs, the plot and the summary go.</param>
/// <param name="FdLimit">RLIMIT_NOFILE of the server (soft and hard).</param>
/// <param name="SteadyConnections">Keep-alive connections of the steady wrk load.</param>
/// <param name="ChurnConnections">Connections of the churning wrk load.</param>
/// <param name="FifoBytesPerSecond">Pace of the stream through the FIFO bridge.</param>
/// <param name="Transport">Kestrel's transport: <c>pipe</c> (<c>UsePipeTransport()</c>, the subject) or <c>sockets</c>, to tell a transport's fault from Kestrel's.</param>
internal sealed record SoakSettings(TimeSpan Duration, string OutDirectory, int FdLimit, int SteadyConnections, int ChurnConnections, double FifoBytesPerSecond, string Transport)
{
    /// <summary>Load, bridge and chaos only; the checkpoint is the last <see cref="CheckpointWindow"/> of it.</summary>
    public static readonly TimeSpan Normal = TimeSpan.FromSeconds(10);

    /// <summary>Samples of the normal phase's end that a checkpoint takes the median of.</summary>
    public static readonly TimeSpan CheckpointWindow = TimeSpan.FromSeconds(5);

    /// <summary>At most this long to fill the server's fd table.</summary>
    public static readonly TimeSpan MaxFill = TimeSpan.FromSeconds(4);

    /// <summary>How long the server is held at its limit (after filling).</summary>
    public static readonly TimeSpan Hold = TimeSpan.FromSeconds(3);

    /// <summary>How long after the release a fresh connection must be served.</summary>
    public static readonly TimeSpan RecoveryTimeout = TimeSpan.FromSeconds(15);

    /// <summary>Seconds of each churning wrk run (back to back).</summary>
    public const int ChurnRunSeconds = 5;

    /// <summary>The churning wrk load asks for <c>Connection: close</c> on every this-many-th request.</summary>
    public const int ChurnCloseEvery = 4;

    /// <summary>Growth allowed from the first third of the checkpoints to the last (10%).</summary>
    public const double MaxGrowth = 0.10;

    /// <summary>A cycle without the recovery: normal, fill, hold.</summary>
    public static TimeSpan CycleLength => Normal + MaxFill + Hold;
}
