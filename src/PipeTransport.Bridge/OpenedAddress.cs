namespace PipeTransport.Bridge;

/// <summary>
/// An address once opened: the connection the bridge reads (its Input) and the connection it
/// writes (its Output). Both are the same connection except for <c>A!!B</c> addresses.
/// </summary>
internal sealed class OpenedAddress : IAsyncDisposable
{
    public OpenedAddress(Address readAddress, FdConnection? reader, Address writeAddress, FdConnection? writer)
    {
        ReadAddress = readAddress;
        Reader = reader;
        WriteAddress = writeAddress;
        Writer = writer;
    }

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

    /// <summary>Closes both; a write or half-close that failed after the last flush fails the write address.</summary>
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
    }
}
