namespace PipeTransport.HandOff;

/// <summary>A completed hand-off: the successor that took over and what it took.</summary>
public sealed class HandOffCommitted
{
    internal HandOffCommitted(PeerCredentials successor, IReadOnlyCollection<string> names)
    {
        Successor = successor;
        Names = names;
    }

    /// <summary>The process that committed (its pid, uid and gid as the kernel recorded them).</summary>
    public PeerCredentials Successor { get; }

    /// <summary>The names of everything that was offered (and is now the successor's).</summary>
    public IReadOnlyCollection<string> Names { get; }
}
