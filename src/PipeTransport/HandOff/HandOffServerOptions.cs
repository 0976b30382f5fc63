namespace PipeTransport.HandOff;

/// <summary>Options of a <see cref="HandOffServer"/>.</summary>
public sealed class HandOffServerOptions
{
    /// <summary>
    /// How long a successor may take between connecting and its commit. One that stalls longer is
    /// dropped and this process resumes as if it had never come. Default 10 seconds.
    /// </summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Told of refused peers, failed or aborted hand-offs and the commit (for logs). Called on the
    /// server's loop; must not throw.
    /// </summary>
    public Action<HandOffEvent>? Events { get; set; }
}
