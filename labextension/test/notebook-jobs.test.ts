import { afterEach, describe, expect, it } from 'vitest';

import { parseParameters } from '../src/panel/parameters';
import { JobView } from '../src/view/JobView';
import { relativeToRoot, setPathOpener } from '../src/view/files';
import { FakeClock, FakeTransport, makeJob } from './helpers';

const ID = 'a1b2c3d4e5f60718293a4b5c6d7e8f90';
const views: JobView[] = [];
afterEach(() => {
  views.splice(0).forEach(v => v.dispose());
  setPathOpener(null);
  document.body.replaceChildren();
});

function mount(job: Parameters<typeof makeJob>[0]) {
  const clock = new FakeClock();
  const transport = new FakeTransport();
  const view = new JobView(transport, ID, { clock, schedule: f => f(), chart: false, stream: { clock, random: () => 0 } });
  views.push(view);
  document.body.appendChild(view.node);
  transport.last.open().send({ type: 'snapshot', job: makeJob(job) });
  return view.node;
}

describe('a notebook job view', () => {
  it('shows the executed copy and opens it relative to the server root', () => {
    const opened: string[] = [];
    setPathOpener(p => opened.push(p), '/srv/lab');
    const root = mount({ kind: 'notebook', name: 'train.ipynb', output_path: '/srv/lab/exp/train.a1b2c3d4.ipynb' });
    const copy = root.querySelector('.jobctl-copy') as HTMLElement;
    expect(copy.hidden).toBe(false);
    expect(copy.textContent).toBe('Executed copy: exp/train.a1b2c3d4.ipynbOpen');
    const open = copy.querySelector('button[aria-label="Open the executed copy"]') as HTMLButtonElement;
    open.click();
    expect(opened).toEqual(['exp/train.a1b2c3d4.ipynb']);
  });

  it('shows only the path where nothing can open it (outside the root, no opener)', () => {
    setPathOpener(p => p, '/srv/lab');
    let root = mount({ kind: 'notebook', output_path: '/elsewhere/t.ipynb' });
    expect(root.querySelector('.jobctl-copy')!.textContent).toBe('Executed copy: /elsewhere/t.ipynb');
    expect(root.querySelector('.jobctl-copy button')).toBeNull();
    setPathOpener(null);
    root = mount({ kind: 'notebook', output_path: '/srv/lab/t.ipynb' });
    expect(root.querySelector('.jobctl-copy button')).toBeNull();
  });

  it('hides the line for other kinds, and a path is text, never markup', () => {
    setPathOpener(p => p, '/');
    expect((mount({ kind: 'training' }).querySelector('.jobctl-copy') as HTMLElement).hidden).toBe(true);
    const root = mount({ kind: 'notebook', output_path: '/<img src=x onerror=alert(1)>.ipynb' });
    expect(root.querySelector('img')).toBeNull();
    expect(root.querySelector('.jobctl-copy-path')!.textContent).toBe('<img src=x onerror=alert(1)>.ipynb');
  });
});

describe('relativeToRoot', () => {
  it.each([
    ['/srv/lab/a/b.ipynb', '/srv/lab', 'a/b.ipynb'],
    ['/srv/lab/a/b.ipynb', '/srv/lab/', 'a/b.ipynb'],
    ['/srv/labx/b.ipynb', '/srv/lab', null],
    ['/root/work/n.ipynb', '~/work', 'n.ipynb'],
    ['/home/ana/n.ipynb', '~', 'n.ipynb'],
    ['/opt/n.ipynb', '~', null],
    ['/any/n.ipynb', '/', 'any/n.ipynb'],
    ['/any/n.ipynb', '', null]
  ])('%s under %s is %s', (abs, root, want) => {
    expect(relativeToRoot(abs, root)).toBe(want);
  });
});

describe('parseParameters', () => {
  it('takes a JSON object, or nothing', () => {
    expect(parseParameters('')).toEqual({});
    expect(parseParameters(' {"epochs": 3, "lr": 0.1} ')).toEqual({ epochs: 3, lr: 0.1 });
  });
  it('says why anything else is refused', () => {
    expect(parseParameters('[1]')).toBe('The parameters must be a JSON object, such as {"epochs": 3}.');
    expect(parseParameters('3')).toBe('The parameters must be a JSON object, such as {"epochs": 3}.');
    expect(parseParameters('{epochs: 3}')).toMatch(/^The parameters are not valid JSON \(/);
  });
});
