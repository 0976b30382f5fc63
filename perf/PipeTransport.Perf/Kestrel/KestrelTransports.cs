namespace PipeTransport.Perf.Kestrel;

/// <summary>The transports of the Kestrel scenarios: the subject, its baseline and the tuning variants.</summary>
internal static class KestrelTransports
{
    public const string Pipe = "pipe";

    public const string Sockets = "sockets";

    public const string PipeInline = "pipe-inline";

    public const string PipePoolSend = "pipe-pool-send";

    public const string PipeNoYield = "pipe-no-yield";

    public const string PipeDedicated = "pipe-dedicated";

    public const string PipeHandOff = "pipe-hand-off";

    public const string PipeNoCoalesce = "pipe-no-coalesce";

    public const string PipeReactorPerCpu = "pipe-reactor-per-cpu";

    public static string DisplayName(string transport) => transport switch
    {
        Pipe => "UsePipeTransport()",
        Sockets => "Kestrel Sockets transport",
        PipeInline => "UsePipeTransport(UnsafePreferInlineScheduling)",
        PipePoolSend => "UsePipeTransport(ConnectionOptions.PoolSendThreshold = 64 KiB)",
        PipeNoYield => "UsePipeTransport(ReactorsYieldBeforeWaiting = false)",
        PipeDedicated => "UsePipeTransport(ReactorPolling = DedicatedThread)",
        PipeHandOff => "UsePipeTransport(ReactorPolling = HandOffToThreadPool)",
        PipeNoCoalesce => "UsePipeTransport(ConnectionOptions.CoalesceFlushes = false)",
        PipeReactorPerCpu => "UsePipeTransport(ReactorCount = processor count)",
        _ => transport,
    };
}
