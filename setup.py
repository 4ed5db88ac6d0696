"""Packaging for effnb, nbdev-2 style: every value comes from `settings.ini`."""
from configparser import ConfigParser
import setuptools

cfg = ConfigParser(delimiters=['='])
cfg.read('settings.ini', encoding='utf-8')
cfg = cfg['DEFAULT']

for key in 'version description keywords author author_email'.split():
    assert key in cfg, f'settings.ini is missing the key {key!r}'

def _reqs(key): return cfg.get(key, '').split()

statuses = ['1 - Planning', '2 - Pre-Alpha', '3 - Alpha', '4 - Beta', '5 - Production/Stable']
py_versions = '3.10 3.11 3.12 3.13'.split()
min_python = cfg['min_python']
lib_path = cfg['lib_path']

setuptools.setup(
    name=cfg['lib_name'],
    license='Apache-2.0',
    classifiers=[f'Development Status :: {statuses[int(cfg["status"]) - 1]}',
                 f'Intended Audience :: {cfg["audience"].title()}',
                 f'Natural Language :: {cfg["language"].title()}']
                + [f'Programming Language :: Python :: {v}' for v in py_versions[py_versions.index(min_python):]],
    url=cfg['git_url'],
    packages=setuptools.find_packages(include=[lib_path, f'{lib_path}.*']),
    include_package_data=True,
    install_requires=_reqs('requirements'),
    # the C++ sources of the native selective scan, compiled on first use by torch.utils.cpp_extension
    package_data={lib_path: ['csrc/*.cpp', 'csrc/*.h']},
    extras_require={'dev': _reqs('dev_requirements'), 'hf': _reqs('hf_requirements'),
                    'dask': _reqs('dask_requirements'), 'slurm': _reqs('slurm_requirements')},
    dependency_links=cfg.get('dep_links', '').split(),
    python_requires=f'>={min_python}',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    zip_safe=False,
    entry_points={'console_scripts': cfg.get('console_scripts', '').split(),
                  # load-bearing: show_doc source links and doclinks come from this entry point
                  'nbdev': [f'{cfg["lib_path"]}={cfg["lib_path"]}._modidx:d']},
    version=cfg['version'], description=cfg['description'], keywords=cfg['keywords'],
    author=cfg['author'], author_email=cfg['author_email'],
)
