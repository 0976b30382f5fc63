namespace PipeTransport.Bridge;

/// <summary>A byte count written by one pump and read by the progress line.</summary>
internal sealed class ByteCounter
{
    private long _value;

    public long Value => Volatile.Read(ref _value);

    public void Add(long bytes) => Volatile.Write(ref _value, _value + bytes);
}
