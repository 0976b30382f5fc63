namespace PipeTransport.Perf.Soak;

/// <summary>The phases of one soak cycle, in order (the names are the CSV's phase column).</summary>
internal static class SoakPhase
{
    /// <summary>The loads, the FIFO bridge and the chaos, nothing else; the checkpoint is taken at its end.</summary>
    public const string Normal = "normal";

    /// <summary>Idle connections are opened until the server holds as many fds as it can.</summary>
    public const string Fill = "fill";

    /// <summary>The idle connections are held: the server is at its fd limit.</summary>
    public const string Hold = "hold";

    /// <summary>Released; waiting until a fresh connection is served again.</summary>
    public const string Recover = "recover";

    public static bool IsFdLimit(string phase) => phase is Fill or Hold or Recover;
}
