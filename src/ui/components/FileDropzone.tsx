// A drop area for files or whole folders, with buttons to pick either. It only collects the
// files, and the caller checks them and sends them to the worker.

import { useRef, type ReactNode } from 'react';
import { useDropzone } from 'react-dropzone';

interface FileDropzoneProps {
  testId: string;
  title: string;
  hint: ReactNode;
  /** Extensions the file picker offers, e.g. `.jsonl,.json,.csv`. The caller checks dropped files. */
  accept?: string;
  multiple?: boolean;
  /** Offers a folder picker next to the file picker. */
  allowFolder?: boolean;
  disabled?: boolean;
  onFiles(files: File[]): void;
}

export function FileDropzone({ testId, title, hint, accept, multiple = false, allowFolder = false, disabled = false, onFiles }: FileDropzoneProps) {
  const folderInput = useRef<HTMLInputElement | null>(null);
  const { getRootProps, getInputProps, isDragActive, open } = useDropzone({
    onDrop: (accepted) => onFiles(accepted),
    multiple,
    disabled,
    noClick: true,
    noKeyboard: true,
  });

  return (
    <div
      {...getRootProps({
        className: `dropzone${isDragActive ? ' dropzone-active' : ''}${disabled ? ' dropzone-disabled' : ''}`,
        'data-testid': testId,
      } as React.HTMLAttributes<HTMLDivElement>)}
    >
      <input {...getInputProps({ accept })} data-testid={`${testId}-input`} />
      <div className="dropzone-title">{isDragActive ? 'Drop to load' : title}</div>
      <div className="dropzone-hint">{hint}</div>
      <div className="dropzone-buttons">
        <button type="button" onClick={open} disabled={disabled}>
          {multiple ? 'Choose files…' : 'Choose a file…'}
        </button>
        {allowFolder && (
          <>
            <button type="button" onClick={() => folderInput.current?.click()} disabled={disabled}>
              Choose a folder…
            </button>
            <input
              type="file"
              hidden
              data-testid={`${testId}-folder-input`}
              // React has no typed prop for webkitdirectory, so it is set on the element.
              ref={(element) => {
                folderInput.current = element;
                element?.setAttribute('webkitdirectory', '');
              }}
              onChange={(event) => {
                const files = Array.from(event.currentTarget.files ?? []);
                event.currentTarget.value = '';
                if (files.length > 0) onFiles(files);
              }}
            />
          </>
        )}
      </div>
    </div>
  );
}
