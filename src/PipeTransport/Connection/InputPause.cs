namespace PipeTransport.Connection;

/// <summary>
/// One pause of a connection's receive direction for a hand-off (<see cref="FdConnection.PauseInputAsync"/>):
/// when the receive loop stopped reading, and what it does next.
/// </summary>
internal sealed class InputPause
{
    /// <summary>Completes once no read of the fd is in progress and none will start until <see cref="Resumed"/>.</summary>
    public TaskCompletionSource Reached { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>False: read on. True: Input ends here (the successor reads the fd from now on).</summary>
    public TaskCompletionSource<bool> Resumed { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
}
