namespace PipeTransport;

/// <summary>
/// How a <see cref="ReactorGroup"/> schedules its polling, decided once when the group started
/// (<see cref="ReactorGroup.Mode"/>): who polls after a wake-up, whether a reactor yields before it
/// blocks, and the processor count both decisions were made on.
/// </summary>
public readonly record struct ReactorMode
{
    internal ReactorMode(ReactorPolling polling, bool yieldsBeforeWaiting, int processorCount)
    {
        Polling = polling;
        YieldsBeforeWaiting = yieldsBeforeWaiting;
        ProcessorCount = processorCount;
    }

    /// <summary>
    /// Who polls after a wake-up: <see cref="ReactorPolling.DedicatedThread"/> or
    /// <see cref="ReactorPolling.HandOffToThreadPool"/> (<see cref="ReactorPolling.Auto"/> already resolved).
    /// </summary>
    public ReactorPolling Polling { get; }

    /// <summary>Whether a wake-up that dispatched events passes the polling to the thread pool.</summary>
    public bool HandsOffToThreadPool => Polling == ReactorPolling.HandOffToThreadPool;

    /// <summary>Whether a reactor yields its CPU once before it blocks (see <see cref="ReactorGroup.YieldsBeforeWaiting"/>).</summary>
    public bool YieldsBeforeWaiting { get; }

    /// <summary><see cref="Environment.ProcessorCount"/> when the group started: what <see cref="ReactorPolling.Auto"/> decided on.</summary>
    public int ProcessorCount { get; }

    /// <summary>
    /// Whether slow pool turns suspend the hand-off for a while (see <see cref="ReactorPolling.HandOffToThreadPool"/>):
    /// only when the group hands off and runs on several CPUs.
    /// </summary>
    public bool SuspendsHandOffWhenSlow => HandsOffToThreadPool && ProcessorCount > 1;

    /// <inheritdoc/>
    public override string ToString() =>
        $"{Polling}, {(YieldsBeforeWaiting ? "yields" : "does not yield")} before waiting, {ProcessorCount} CPU{(ProcessorCount == 1 ? "" : "s")}";
}
