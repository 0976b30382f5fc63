namespace PipeTransport.Diagnostics;

/// <summary>
/// One thread's running totals of what the data paths count. Only <see cref="Owner"/> writes them,
/// with plain additions: a read or a write costs no interlocked operation and shares no cache line
/// with another core. The metrics' callbacks sum every thread's totals.
/// </summary>
internal sealed class TransferCounters(Thread? owner)
{
    public long BytesReceived;
    public long BytesSent;
    public long InputPauses;
    public long OutputPauses;

    /// <summary>The thread that writes these; once it has ended its totals are folded into the retired ones.</summary>
    public Thread? Owner { get; } = owner;

    public void AddTo(TransferCounters total)
    {
        total.BytesReceived += Volatile.Read(ref BytesReceived);
        total.BytesSent += Volatile.Read(ref BytesSent);
        total.InputPauses += Volatile.Read(ref InputPauses);
        total.OutputPauses += Volatile.Read(ref OutputPauses);
    }
}
