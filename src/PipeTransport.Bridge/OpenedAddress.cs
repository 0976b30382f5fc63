namespace PipeTransport.Bridge;

/// <summary>
/// An address once opened: the connection the bridge reads (its Input) and the connection it
/// writes (its Output). Both are the same connection except for <c>A!!B</c> addresses. The child
/// processes of <c>exec:</c> and <c>system:</c> addresses come with it.
/// </summary>
internal sealed class OpenedAddress : IAsyncDisposable
{
    public OpenedAddress(Address readAddress, FdConnection? reader, Address writeAddress, FdConnection? writer,
        IReadOnlyList<ChildProgram>? children = null)
    {
        ReadAddress = readAddress;
        Reader = reader;
        WriteAddress = writeAddress;
        Writer = writer;
        Children = children ?? [];
    }

    public IReadOnlyList<ChildProgram> Children { get; }

    public Address ReadAddress { get; }
    public FdConnection? Reader { get; }
    public Address WriteAddress { get; }
    public FdConnection? Writer { get; }

    /// <summary>True when the write connection is not also read (with -u, or the B of A!!B).</summary>
    public bool IsWriteOnly => Writer is not null && !ReferenceEquals(Reader, Writer);

    public void Abort(Exception? reason)
    {
        Reader?.Abort(reason);
        if (!ReferenceEquals(Reader, Writer)) Writer?.Abort(reason);
    }

    /// <summary>
    /// Waits for the children to exit once the session has ended (as a shell waits for a pipeline)
    /// and reports each status; a non-zero one fails its address.
    /// </summary>
    public async Task WaitForChildrenAsync(BridgeLog log, CancellationToken cancellationToken)
    {
        BridgeFailure? failure = null;
        foreach (ChildProgram child in Children)
        {
            int status = await child.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
            log.Notice($"{child.Address} (pid {child.Pid}) exited with status {status}");
            if (status != 0)
                failure ??= new BridgeFailure(child.Address, $"exited with status {status}");
        }
        if (failure is not null) throw failure;
    }

    /// <summary>
    /// Closes both, then ends the children that are still running; a write or half-close that failed
    /// after the last flush fails the write address.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            try
            {
                if (Reader is not null) await Reader.DisposeAsync().ConfigureAwait(false);
            }
            finally
            {
                if (Writer is not null && !ReferenceEquals(Reader, Writer)) await Writer.DisposeAsync().ConfigureAwait(false);
            }
        }
        catch (PipeTransportException e)
        {
            throw BridgeFailure.From(WriteAddress, e);
        }
        finally
        {
            foreach (ChildProgram child in Children) await child.StopAsync().ConfigureAwait(false);
        }
    }
}
